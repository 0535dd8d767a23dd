package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// cpuTime returns the CPU time pid has used so far: the sum of its threads'
// run times from /proc/PID/task/*/schedstat (nanoseconds), or utime+stime
// from /proc/PID/stat (10 ms ticks) where schedstat is missing.
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum int64
	ok := false
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			sum += v
			ok = true
		}
	}
	if ok {
		return time.Duration(sum)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: fields count from after ")".
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// memKiB returns the VmHWM (peak resident set) and VmRSS of pid in KiB.
func memKiB(pid int) (peak, rss int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var dst *int64
		switch {
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &peak
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &rss
		default:
			continue
		}
		fs := strings.Fields(line)
		if len(fs) >= 2 {
			*dst, _ = strconv.ParseInt(fs[1], 10, 64)
		}
	}
	return peak, rss
}

// pin binds every thread of pid to cpu with taskset.
func pin(pid, cpu int) error {
	out, err := exec.Command("taskset", "-a", "-p", "-c", strconv.Itoa(cpu), strconv.Itoa(pid)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskset -a -p -c %d %d: %v: %s", cpu, pid, err, bytes.TrimSpace(out))
	}
	return nil
}

// machine describes where the benchmark ran.
type machine struct {
	Date       string `json:"date"`
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpu_model"`
	MemoryGiB  int    `json:"memory_gib"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	Prosody    string `json:"prosody"`
	Gavel      string `json:"gavel"`
	Pinned     string `json:"pinned"`
	GCBetween  bool   `json:"prosody_gc_between_rounds"`
	ProsodyGC  string `json:"prosody_gc"`
	MUCStorage string `json:"muc_storage"`
	CommandRun string `json:"command"`
}

func describeMachine(ctx context.Context, prosodyctl func(ctx context.Context, args ...string) ([]byte, error), gavelBin string) machine {
	m := machine{
		Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		CPUs: runtime.NumCPU(),
		Go:   runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		n := 0
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				n++
			}
		}
		if n > 0 {
			m.CPUs = n
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
		m.MemoryGiB = int((kb + 512<<10) >> 20)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := prosodyctl(cctx, "about"); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "Prosody ") {
				m.Prosody = strings.TrimSpace(line)
				break
			}
		}
	}
	if out, err := exec.CommandContext(cctx, gavelBin, "-version").Output(); err == nil {
		m.Gavel = strings.TrimSpace(string(out))
	}
	return m
}
