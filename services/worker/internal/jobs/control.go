package jobs

import (
	"context"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/shared/botcontrol"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/topology"
)

// The worker takes the commands of all its bots on one subscription,
// <control prefix>.> (package botcontrol), made before its first lease names
// the prefix, and read by one goroutine: thousands of bots cost no
// subscription and no goroutine each. A bot is registered before its lease
// is written, so a sender that found the lease finds the bot here.

// subscribeControl subscribes the worker's control prefix.
func (r *Runtime) subscribeControl() (*nats.Subscription, error) {
	return r.nc.ChanSubscribe(r.controlPrefix+".>", r.control)
}

func (r *Runtime) dispatchControl(ctx, base context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-r.control:
			r.routeControl(base, m)
		}
	}
}

func (r *Runtime) routeControl(base context.Context, m *nats.Msg) {
	asJSON := m.Header.Get(topology.HeaderContentType) == topology.ContentTypeJSON
	project, botID, ok := botcontrol.Target(r.controlPrefix, m.Subject)
	var b *Bot
	if ok {
		b = r.lookup(botID)
	}
	if b == nil || b.job.GetProject() != project {
		// No state in the reply: the sender takes it as "nobody holds the bot".
		respondControl(m, asJSON, &usherv1.ControlReply{Error: "bot is not served by this worker"}, r)
		return
	}
	var cmd usherv1.LeaveCommand
	var err error
	if asJSON {
		err = protojson.Unmarshal(m.Data, &cmd)
	} else {
		err = proto.Unmarshal(m.Data, &cmd)
	}
	if err != nil {
		respondControl(m, asJSON, &usherv1.ControlReply{Error: "undecodable leave command"}, r)
		return
	}
	sub := botstate.SubUserRequested
	if reason := cmd.GetReason(); reason != "" && botstate.KnownSubCode(reason) {
		sub = reason
	}
	r.commands.Go(func() {
		ctx, cancel := r.opCtx(base)
		defer cancel()
		reply := b.requestLeave(ctx, sub)
		respondControl(m, asJSON, reply, r)
	})
}

func respondControl(m *nats.Msg, asJSON bool, reply *usherv1.ControlReply, r *Runtime) {
	if m.Reply == "" {
		return
	}
	var data []byte
	var err error
	ct := topology.ContentTypeProtobuf
	if asJSON {
		ct = topology.ContentTypeJSON
		data, err = protojson.Marshal(reply)
	} else {
		data, err = proto.Marshal(reply)
	}
	if err != nil {
		r.log.Error("encode control reply", "error", err)
		return
	}
	out := &nats.Msg{Subject: m.Reply, Data: data, Header: nats.Header{topology.HeaderContentType: []string{ct}}}
	if err := r.nc.PublishMsg(out); err != nil {
		r.log.Warn("control reply not sent", "error", err)
	}
}
