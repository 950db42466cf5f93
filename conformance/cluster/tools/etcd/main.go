// Command etcd is etcd's own server entry point, built from the pinned go.etcd.io/etcd/server module.
// etcd's root module points its submodules at local paths, so it cannot be built with
// `go install`; this wrapper depends on the published server module instead.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
