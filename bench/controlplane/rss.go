package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
)

// The podlet runs each container as a process and records it in
// <podlet state>/pods/<pod uid>/pids, one "pid starttime executable" line per start; a line
// whose pid still has that start time (field 22 of /proc/<pid>/stat) is the running container.

// rssMB returns the VmRSS (MB) of the running processes of executable exe in the Pods matching
// selector in ns, one value per process, sorted, and the executable's path (from /proc).
func rssMB(ctx context.Context, dc dynamic.Interface, podletDir, ns, selector, exe string) ([]float64, string, error) {
	pods, err := dc.Resource(podGVR).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, "", err
	}
	var out []float64
	var path string
	for _, pod := range pods.Items {
		text, err := os.ReadFile(filepath.Join(podletDir, "pods", string(pod.GetUID()), "pids"))
		if err != nil {
			continue // not started yet, or gone
		}
		for _, line := range strings.Split(string(text), "\n") {
			f := strings.Fields(line)
			if len(f) < 3 || filepath.Base(f[2]) != exe || startTime(f[0]) != f[1] {
				continue
			}
			kb, err := vmRSS(f[0])
			if err != nil {
				continue
			}
			out = append(out, float64(kb)/1024)
			path, _ = os.Readlink("/proc/" + f[0] + "/exe")
		}
	}
	if len(out) == 0 {
		return nil, "", fmt.Errorf("no running %s process in %s (%s) under %s", exe, ns, selector, podletDir)
	}
	sort.Float64s(out)
	return out, path, nil
}

func startTime(pid string) string {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return ""
	}
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return ""
	}
	return fields[19]
}

func vmRSS(pid string) (int64, error) {
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %s", pid)
}
