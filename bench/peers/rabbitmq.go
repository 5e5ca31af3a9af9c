// rabbitmq.go: the RabbitMQ quorum-queue driver of the peer client
// (peer-rabbitmq). setup connects to the first endpoint (the node that
// declares the queue, hence its leader) with up to connectionsMax AMQP
// connections, deletes and declares the durable quorum queue "bench"
// (x-queue-type quorum, 3 members); every worker has its own channel in
// confirm mode, publishes one persistent message to the queue and waits
// for its publisher confirm, which a quorum queue sends once a quorum of
// members has fsynced the message.
package main

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const connectionsMax = 4

type rabbitmq struct {
	conns []*amqp.Connection
	o     *options
}

func init() { register(&rabbitmq{}) }

func (r *rabbitmq) name() string { return "rabbitmq" }

func (r *rabbitmq) setup(o *options) error {
	r.o = o
	n := o.inFlight
	if n > connectionsMax {
		n = connectionsMax
	}
	url := "amqp://guest:guest@" + o.endpoints[0] + "/"
	for i := 0; i < n; i++ {
		c, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(o.connectTimeout)})
		if err != nil {
			return err
		}
		r.conns = append(r.conns, c)
	}
	ch, err := r.conns[0].Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if _, err := ch.QueueDelete("bench", false, false, false); err != nil {
		// A failed command closes the channel: open another.
		ch, err = r.conns[0].Channel()
		if err != nil {
			return err
		}
	}
	_, err = ch.QueueDeclare("bench", true, false, false, false, amqp.Table{
		"x-queue-type": "quorum", "x-quorum-initial-group-size": int32(3)})
	if err != nil {
		return fmt.Errorf("declare quorum queue: %v", err)
	}
	return nil
}

func (r *rabbitmq) worker(i int) (func([]byte) error, error) {
	ch, err := r.conns[i%len(r.conns)].Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		return nil, err
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	return func(p []byte) error {
		ctx, cancel := context.WithTimeout(context.Background(), r.o.opTimeout)
		defer cancel()
		err := ch.PublishWithContext(ctx, "", "bench", false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: p})
		if err != nil {
			return fmt.Errorf("%w: publish: %v", errFatal, err)
		}
		t := time.NewTimer(r.o.opTimeout)
		defer t.Stop()
		select {
		case c, ok := <-confirms:
			if !ok {
				return fmt.Errorf("%w: channel closed", errFatal)
			}
			if !c.Ack {
				return fmt.Errorf("nack for delivery tag %d", c.DeliveryTag)
			}
			return nil
		case <-t.C:
			return fmt.Errorf("%w: no confirm within %v", errFatal, r.o.opTimeout)
		}
	}, nil
}

func (r *rabbitmq) close() {
	if ch, err := r.conns[0].Channel(); err == nil {
		_, _ = ch.QueueDelete("bench", false, false, false)
	}
	for _, c := range r.conns {
		c.Close()
	}
}
