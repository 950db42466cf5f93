// Command probe sends a steady load through a Gateway while a fault is injected, and reports
// every request that failed, by kind. Two streams, as a user's clients would: requests on
// keep-alive connections, and requests that each open a new connection. It runs until
// -duration or SIGTERM/SIGINT, waits for the requests in flight, and prints one line:
//
//	sent=N failed=N keepalive_sent=N new_sent=N [kind=N ...]
//
// where a kind is "status_503", "timeout", "refused", "reset", "eof", "unreachable" (no route to
// the address: on the local cluster, a load-balancer or Pod IP no rule or Pod answers for) or
// "other".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type tally struct {
	mu    sync.Mutex
	kinds map[string]int
}

func (t *tally) add(kind string) {
	t.mu.Lock()
	t.kinds[kind]++
	t.mu.Unlock()
}

func kindOf(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "unreachable"
	}
	return "other"
}

func main() {
	url := flag.String("url", "", "the URL to request")
	host := flag.String("host", "", "the Host header")
	keepaliveRPS := flag.Int("keepalive-rps", 150, "requests per second on keep-alive connections")
	newRPS := flag.Int("new-rps", 50, "requests per second each on a new connection")
	duration := flag.Duration("duration", 60*time.Second, "how long to run at most")
	timeout := flag.Duration("timeout", 5*time.Second, "a request's deadline (the client's patience)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()

	keepalive := &http.Client{Timeout: *timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	fresh := &http.Client{Timeout: *timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	t := &tally{kinds: map[string]int{}}
	var sent, failed, kaSent, newSent atomic.Int64
	var inflight sync.WaitGroup
	one := func(c *http.Client, count *atomic.Int64) {
		defer inflight.Done()
		sent.Add(1)
		count.Add(1)
		req, _ := http.NewRequest("GET", *url, nil)
		req.Host = *host
		resp, err := c.Do(req)
		if err != nil {
			failed.Add(1)
			t.add(kindOf(err))
			fmt.Fprintf(os.Stderr, "%s %v\n", time.Now().Format(time.RFC3339Nano), err)
			return
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			failed.Add(1)
			t.add(kindOf(err))
			fmt.Fprintf(os.Stderr, "%s reading the body: %v\n", time.Now().Format(time.RFC3339Nano), err)
			return
		}
		if resp.StatusCode != 200 {
			failed.Add(1)
			t.add(fmt.Sprintf("status_%d", resp.StatusCode))
			fmt.Fprintf(os.Stderr, "%s status %d\n", time.Now().Format(time.RFC3339Nano), resp.StatusCode)
		}
	}
	stream := func(rps int, c *http.Client, count *atomic.Int64, done *sync.WaitGroup) {
		defer done.Done()
		if rps <= 0 {
			return
		}
		tick := time.NewTicker(time.Second / time.Duration(rps))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				inflight.Add(1)
				go one(c, count)
			}
		}
	}
	var streams sync.WaitGroup
	streams.Add(2)
	go stream(*keepaliveRPS, keepalive, &kaSent, &streams)
	go stream(*newRPS, fresh, &newSent, &streams)
	streams.Wait()
	inflight.Wait()

	var kinds []string
	for k, n := range t.kinds {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	fmt.Printf("sent=%d failed=%d keepalive_sent=%d new_sent=%d %s\n",
		sent.Load(), failed.Load(), kaSent.Load(), newSent.Load(), strings.Join(kinds, " "))
}
