package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// probe runs e2e/probe (built by controlplane.sh) through the Gateway for the whole run: a
// steady load, half on keep-alive connections and half on new ones, that counts every failed
// request by kind.
type probe struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

type probeResult struct {
	Sent   int64            `json:"sent"`
	Failed int64            `json:"failed"`
	Kinds  map[string]int64 `json:"kinds"`
	Line   string           `json:"line"`
}

func startProbe(bin, addr, host string, rps int, errLog string) (*probe, error) {
	p := &probe{}
	p.cmd = exec.Command(bin, "-url", "http://"+addr+"/probe", "-host", host,
		"-keepalive-rps", strconv.Itoa(rps/2), "-new-rps", strconv.Itoa(rps-rps/2), "-duration", "24h")
	p.cmd.Stdout = &p.out
	f, err := os.Create(errLog)
	if err != nil {
		return nil, err
	}
	p.cmd.Stderr = f
	return p, p.cmd.Start()
}

// stop ends the probe (SIGTERM: it waits for the requests in flight) and parses its line,
// "sent=N failed=N keepalive_sent=N new_sent=N [kind=N ...]".
func (p *probe) stop() (probeResult, error) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		return probeResult{}, fmt.Errorf("probe: %w", err)
	}
	line := strings.TrimSpace(p.out.String())
	r := probeResult{Kinds: map[string]int64{}, Line: line}
	for _, field := range strings.Fields(line) {
		k, v, ok := strings.Cut(field, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil {
			return r, fmt.Errorf("probe: unexpected output %q", line)
		}
		switch k {
		case "sent":
			r.Sent = n
		case "failed":
			r.Failed = n
		case "keepalive_sent", "new_sent":
		default:
			r.Kinds[k] = n
		}
	}
	return r, nil
}
