// jetstream.go: the NATS JetStream driver of the peer client
// (peer-jetstream). setup connects to the 3 servers, deletes and creates
// the stream BENCH (subjects bench.>, file storage, 3 replicas); every
// worker publishes to bench.w<i> with js.Publish, which returns once the
// stream's leader has the message and a quorum of replicas has it in
// memory. NATS 2.9 acknowledges before the data reaches the disk (its
// file store syncs on a timer, sync_interval, 2 minutes by default).
package main

import (
	"fmt"
	"strings"
	"time"

	nats "github.com/nats-io/nats.go"
)

type jetstream struct {
	nc *nats.Conn
	js nats.JetStreamContext
	o  *options
}

func init() { register(&jetstream{}) }

func (j *jetstream) name() string { return "jetstream" }

func (j *jetstream) setup(o *options) error {
	j.o = o
	urls := make([]string, len(o.endpoints))
	for i, e := range o.endpoints {
		urls[i] = "nats://" + e
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Timeout(o.connectTimeout),
		nats.NoReconnect())
	if err != nil {
		return err
	}
	j.nc = nc
	js, err := nc.JetStream(nats.MaxWait(o.opTimeout))
	if err != nil {
		return err
	}
	j.js = js
	_ = js.DeleteStream("BENCH")
	// A fresh cluster may still be electing its meta leader: retry.
	deadline := time.Now().Add(o.connectTimeout)
	for {
		_, err = js.AddStream(&nats.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"},
			Storage: nats.FileStorage, Replicas: 3})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("add stream: %v", err)
	}
	return nil
}

func (j *jetstream) worker(i int) (func([]byte) error, error) {
	subject := fmt.Sprintf("bench.w%d", i)
	return func(p []byte) error {
		_, err := j.js.Publish(subject, p)
		return err
	}, nil
}

func (j *jetstream) close() {
	_ = j.js.DeleteStream("BENCH")
	j.nc.Close()
}
