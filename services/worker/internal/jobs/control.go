package jobs

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/topology"
)

// Every bot has its own subscription on usher.control.<project>.<bot_id> (so
// a request for a bot nobody holds gets "no responders"), but all of them
// feed one channel read by one goroutine: thousands of bots cost no
// goroutine each.

// subscribeControl subscribes the bot's control subject. The subscription is
// in place on the server before any later publish on the same connection,
// so the joining event is never visible before the bot can take a command.
func (r *Runtime) subscribeControl(b *Bot) (*nats.Subscription, error) {
	return r.nc.ChanSubscribe(topology.ControlSubject(b.job.GetProject(), b.job.GetBotId()), r.control)
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
	project, botID := controlTarget(m.Subject)
	b := r.lookup(botID)
	if b == nil || b.job.GetProject() != project {
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
	// Publish on our connection: the bot's subscription may be gone by now.
	if err := r.nc.PublishMsg(out); err != nil {
		r.log.Warn("control reply not sent", "error", err)
	}
}

// controlTarget splits usher.control.<project>.<bot_id>.
func controlTarget(subject string) (project, botID string) {
	rest, ok := strings.CutPrefix(subject, topology.ControlPrefix+".")
	if !ok {
		return "", ""
	}
	project, botID, _ = strings.Cut(rest, ".")
	return project, botID
}
