// common.go: the closed-loop driver shared by the peer clients of
// bench/run (peer-jetstream, peer-rabbitmq, peer-etcd). Each binary is
// built from this file plus one peer file, which registers a driver in
// its init(); see bench/README.md for the build (Debian's Go packages,
// GOPATH=/usr/share/gocode GO111MODULE=off, no network).
//
// Data flow:
//
//	flags -> driver.setup (connect, create the stream / queue)
//	-> N workers, each with its own driver.worker: loop { t0; one durable
//	   write of a --payload-bytes message, acknowledged by the cluster;
//	   latency into the worker's sample slice (at most samplesMax in all) }
//	   until --duration has passed
//	-> wait at most --drain for the workers' last operations
//	-> merge and sort the samples -> percentiles -> a table and one JSON
//	   line (stdout and --json FILE), in the same shape as tandem-load's.
//
// Every wait is bounded: setup by --connect-timeout, each operation by
// --op-timeout, the whole run by --duration + --drain; the process exits
// even if a client library blocks.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	inFlightMax = 4096
	samplesMax  = 20000000
	durationMax = 3600 * time.Second
)

// options are the command-line settings every peer shares.
type options struct {
	endpoints      []string
	inFlight       int
	duration       time.Duration
	drain          time.Duration
	connectTimeout time.Duration
	opTimeout      time.Duration
	payloadBytes   int
	jsonPath       string
	quiet          bool
}

// driver is one peer system. setup runs once; worker returns the write
// function of worker i (called from that worker's goroutine only);
// close releases everything and is called once at the end.
type driver interface {
	name() string
	setup(o *options) error
	worker(i int) (func(payload []byte) error, error)
	close()
}

var registered driver

func register(d driver) {
	if registered != nil {
		panic("two peer drivers linked into one binary")
	}
	registered = d
}

type workerResult struct {
	samples []int64 // nanoseconds
	ok      uint64
	errs    uint64
	first   string
}

type report struct {
	Bench      string             `json:"bench"`
	Peer       string             `json:"peer"`
	Endpoints  string             `json:"endpoints"`
	InFlight   int                `json:"in_flight"`
	Payload    int                `json:"payload_bytes"`
	Seconds    float64            `json:"seconds"`
	Sent       uint64             `json:"sent"`
	Acked      uint64             `json:"acknowledged"`
	AckedPerS  float64            `json:"acknowledged_per_s"`
	LatencyUs  map[string]float64 `json:"latency_us"`
	ErrorTotal uint64             `json:"error_total"`
	FirstError string             `json:"first_error,omitempty"`
	ClientCPU  float64            `json:"client_cpu_s"`
	Status     string             `json:"status"`
}

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "peer-%s: "+format+"\n",
		append([]interface{}{registered.name()}, args...)...)
	os.Exit(code)
}

func parseOptions() *options {
	o := &options{}
	endpoints := flag.String("endpoints", "", "comma-separated host:port list (127.0.0.1 only)")
	flag.IntVar(&o.inFlight, "in-flight", 1, "concurrent outstanding writes (closed loop)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long to issue writes")
	flag.DurationVar(&o.drain, "drain", 5*time.Second, "wait for outstanding writes after --duration")
	flag.DurationVar(&o.connectTimeout, "connect-timeout", 20*time.Second, "bound on setup")
	flag.DurationVar(&o.opTimeout, "op-timeout", 10*time.Second, "bound on one write")
	flag.IntVar(&o.payloadBytes, "payload-bytes", 128, "message body size")
	flag.StringVar(&o.jsonPath, "json", "", "also write the JSON line to this file")
	flag.BoolVar(&o.quiet, "quiet", false, "print only the JSON line")
	flag.Parse()
	if flag.NArg() != 0 {
		fail(2, "unexpected argument %q", flag.Arg(0))
	}
	if *endpoints == "" {
		fail(2, "--endpoints is required")
	}
	for _, e := range strings.Split(*endpoints, ",") {
		if !strings.HasPrefix(e, "127.0.0.1:") && !strings.HasPrefix(e, "localhost:") {
			fail(2, "endpoint %q is not on 127.0.0.1 or localhost", e)
		}
		o.endpoints = append(o.endpoints, e)
	}
	if o.inFlight < 1 || o.inFlight > inFlightMax {
		fail(2, "--in-flight wants 1..%d (got %d)", inFlightMax, o.inFlight)
	}
	if o.duration <= 0 || o.duration > durationMax {
		fail(2, "--duration wants (0, 1h] (got %v)", o.duration)
	}
	if o.drain < 0 || o.drain > 10*time.Minute {
		fail(2, "--drain wants [0, 10m] (got %v)", o.drain)
	}
	if o.payloadBytes < 1 || o.payloadBytes > 1<<20 {
		fail(2, "--payload-bytes wants 1..1048576 (got %d)", o.payloadBytes)
	}
	if o.connectTimeout <= 0 || o.opTimeout <= 0 {
		fail(2, "--connect-timeout and --op-timeout must be positive")
	}
	return o
}

// withTimeout runs f and gives up after d (f keeps running; the process
// is about to report or exit either way).
func withTimeout(d time.Duration, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	t := time.NewTimer(d) // stopped at once: no timer piles up per write
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("timed out after %v", d)
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) +
		float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func percentile(sorted []int64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return float64(sorted[i]) / 1e3
}

func main() {
	if registered == nil {
		fmt.Fprintln(os.Stderr, "peer: no driver linked in")
		os.Exit(2)
	}
	o := parseOptions()
	d := registered
	if err := withTimeout(o.connectTimeout, func() error { return d.setup(o) }); err != nil {
		fail(1, "setup against %s: %v", strings.Join(o.endpoints, ","), err)
	}
	writers := make([]func([]byte) error, o.inFlight)
	err := withTimeout(o.connectTimeout, func() error {
		for i := range writers {
			w, err := d.worker(i)
			if err != nil {
				return fmt.Errorf("worker %d: %v", i, err)
			}
			writers[i] = w
		}
		return nil
	})
	if err != nil {
		fail(1, "%v", err)
	}

	payload := make([]byte, o.payloadBytes)
	for i := range payload {
		payload[i] = 'x'
	}
	var budget int64 = samplesMax
	results := make([]workerResult, o.inFlight)
	var wg sync.WaitGroup
	var lastDone int64
	start := time.Now()
	stop := start.Add(o.duration)
	for i := 0; i < o.inFlight; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := &results[i]
			for time.Now().Before(stop) {
				t0 := time.Now()
				err := withTimeout(o.opTimeout, func() error { return writers[i](payload) })
				t1 := time.Now()
				if err != nil {
					r.errs++
					if r.first == "" {
						r.first = err.Error()
					}
					if errors.Is(err, errFatal) {
						return
					}
					continue
				}
				r.ok++
				if atomic.AddInt64(&budget, -1) >= 0 {
					r.samples = append(r.samples, t1.Sub(t0).Nanoseconds())
				}
				atomic.StoreInt64(&lastDone, t1.Sub(start).Nanoseconds())
			}
		}(i)
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	status := "ok"
	select {
	case <-finished:
	case <-time.After(o.duration + o.drain):
		status = "timeout"
	}
	elapsed := time.Duration(atomic.LoadInt64(&lastDone))
	if elapsed < o.duration/2 {
		elapsed = time.Since(start)
	}
	rep := report{Bench: "peer", Peer: d.name(), Endpoints: strings.Join(o.endpoints, ","),
		InFlight: o.inFlight, Payload: o.payloadBytes, Seconds: elapsed.Seconds(), Status: status}
	var all []int64
	for i := range results {
		// After a timeout a worker may still append: read only what
		// finished workers wrote.
		if status == "ok" {
			all = append(all, results[i].samples...)
		}
		rep.Acked += results[i].ok
		rep.ErrorTotal += results[i].errs
		if rep.FirstError == "" {
			rep.FirstError = results[i].first
		}
	}
	rep.Sent = rep.Acked + rep.ErrorTotal
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	var sum float64
	for _, v := range all {
		sum += float64(v)
	}
	mean := 0.0
	if len(all) > 0 {
		mean = sum / float64(len(all)) / 1e3
	}
	rep.LatencyUs = map[string]float64{"p50": percentile(all, 0.5), "p90": percentile(all, 0.9),
		"p99": percentile(all, 0.99), "p999": percentile(all, 0.999), "max": percentile(all, 1), "mean": mean}
	if rep.Seconds > 0 {
		rep.AckedPerS = float64(rep.Acked) / rep.Seconds
	}
	rep.ClientCPU = cpuSeconds()
	line, _ := json.Marshal(rep)
	if !o.quiet {
		fmt.Printf("peer-%s: closed loop, %d in flight, %d-byte messages, %s\n",
			d.name(), o.inFlight, o.payloadBytes, rep.Endpoints)
		fmt.Printf("seconds %.3f  acknowledged %d  errors %d\n", rep.Seconds, rep.Acked, rep.ErrorTotal)
		fmt.Printf("throughput %.1f acknowledged/s\n", rep.AckedPerS)
		fmt.Printf("latency ms      p50      p90      p99     p999      max     mean\n")
		l := rep.LatencyUs
		fmt.Printf("           %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f\n", l["p50"]/1e3, l["p90"]/1e3,
			l["p99"]/1e3, l["p999"]/1e3, l["max"]/1e3, l["mean"]/1e3)
		if rep.FirstError != "" {
			fmt.Printf("first error: %s\n", rep.FirstError)
		}
	}
	fmt.Println(string(line))
	if o.jsonPath != "" {
		if err := os.WriteFile(o.jsonPath, append(line, '\n'), 0o644); err != nil {
			fail(1, "%v", err)
		}
	}
	if status == "ok" {
		done := make(chan struct{})
		go func() { d.close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}
	if rep.Acked == 0 {
		fail(1, "no write was acknowledged (first error: %s)", rep.FirstError)
	}
	os.Exit(0)
}

// errFatal marks an error after which a worker cannot continue (its
// channel or connection is gone).
var errFatal = errors.New("fatal")
