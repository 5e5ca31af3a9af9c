// etcd.go: the etcd driver of the peer client (peer-etcd). setup creates
// one clientv3 client over the 3 endpoints; every worker puts
// bench/w<i>/<seq> with a --payload-bytes value. A Put returns once the
// leader has committed it, i.e. a quorum has written and fsynced it to its
// WAL. setup deletes the prefix bench/ and close deletes it again.
package main

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/clientv3"
)

type etcd struct {
	cli *clientv3.Client
	o   *options
}

func init() { register(&etcd{}) }

func (e *etcd) name() string { return "etcd" }

func (e *etcd) setup(o *options) error {
	e.o = o
	cli, err := clientv3.New(clientv3.Config{Endpoints: o.endpoints,
		DialTimeout: o.connectTimeout})
	if err != nil {
		return err
	}
	e.cli = cli
	ctx, cancel := context.WithTimeout(context.Background(), o.connectTimeout)
	defer cancel()
	_, err = cli.Delete(ctx, "bench/", clientv3.WithPrefix())
	return err
}

func (e *etcd) worker(i int) (func([]byte) error, error) {
	seq := 0
	return func(p []byte) error {
		ctx, cancel := context.WithTimeout(context.Background(), e.o.opTimeout)
		defer cancel()
		seq++
		_, err := e.cli.Put(ctx, fmt.Sprintf("bench/w%d/%d", i, seq), string(p))
		return err
	}, nil
}

func (e *etcd) close() {
	ctx, cancel := context.WithTimeout(context.Background(), e.o.opTimeout)
	defer cancel()
	_, _ = e.cli.Delete(ctx, "bench/", clientv3.WithPrefix())
	e.cli.Close()
}
