// Command coredns is CoreDNS with only the plugins the local cluster's DNS needs.
// The plugin chain order comes from CoreDNS's own directive list, not from these imports,
// so importing a subset keeps its behaviour and skips the cloud providers' SDKs.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	// The conformance suite's own CoreDNS (a UDPRoute backend) configures `forward`; Pods cannot
	// reach beyond the cluster (up.sh rejects their egress), so it never leaves this machine.
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/whoami"
)

func main() {
	coremain.Run()
}
