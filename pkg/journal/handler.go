package journal

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// HandlerOptions configure a Handler.
type HandlerOptions struct {
	// Level is the lowest level logged (Info when nil).
	Level slog.Leveler
	// Identifier is the SYSLOG_IDENTIFIER of every entry ("postern/smtpd").
	Identifier string
	// Prefix starts the field name of every attribute: an attribute "to" becomes the
	// field Prefix+"TO".
	Prefix string
	// Names gives some attributes a field name of their own, by key (groups joined
	// with "."): {"id": "POSTERN_QUEUE_ID"}.
	Names map[string]string
	// Fallback takes, as a text line, an entry the journal did not take (journald
	// stopped): standard error, which systemd also collects.
	Fallback io.Writer
}

// Handler is a slog.Handler that sends each record to the journal as one entry:
// MESSAGE is the record's message followed by its attributes as key=value pairs (what
// slog's text handler writes, without time and level, which the journal has), PRIORITY
// the syslog priority of its level, SYSLOG_IDENTIFIER the identifier, and each
// attribute a field of its own.
type Handler struct {
	conn *Conn
	opts HandlerOptions
	// text formats MESSAGE into sink; WithAttrs and WithGroup derive it once, as they
	// derive the Handler, so that a record does not pay for them again.
	text   slog.Handler
	sink   *sink
	fields []Field
	group  string // the open groups, joined by "." and ending with one
}

// sink is the buffer the text handlers of a Handler and those derived from it write to;
// mu makes each record's formatting and reading of it one step.
type sink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *sink) Write(p []byte) (int, error) { return s.buf.Write(p) }

// NewHandler returns a Handler sending to conn.
func NewHandler(conn *Conn, opts HandlerOptions) *Handler {
	sk := &sink{}
	text := slog.NewTextHandler(sk, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
				return slog.Attr{}
			}
			return a
		},
	})
	return &Handler{conn: conn, opts: opts, text: text, sink: sk}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool {
	min := slog.LevelInfo
	if h.opts.Level != nil {
		min = h.opts.Level.Level()
	}
	return l >= min
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	h2.text = h.text.WithAttrs(attrs)
	h2.fields = h.fields[:len(h.fields):len(h.fields)]
	for _, a := range attrs {
		h2.fields = h2.appendAttr(h2.fields, h.group, a)
	}
	return &h2
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.text = h.text.WithGroup(name)
	h2.group = h.group + name + "."
	return &h2
}

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	fields := make([]Field, 0, 3+len(h.fields)+r.NumAttrs())
	fields = append(fields,
		Field{"MESSAGE", h.message(ctx, r)},
		Field{"PRIORITY", priority(r.Level)},
	)
	if h.opts.Identifier != "" {
		fields = append(fields, Field{"SYSLOG_IDENTIFIER", h.opts.Identifier})
	}
	fields = append(fields, h.fields...)
	r.Attrs(func(a slog.Attr) bool {
		fields = h.appendAttr(fields, h.group, a)
		return true
	})
	err := h.conn.Send(fields)
	if err != nil && h.opts.Fallback != nil {
		fmt.Fprintf(h.opts.Fallback, "%s: %s (%v)\n", h.opts.Identifier, fields[0].Value, err)
	}
	return err
}

// message formats MESSAGE with slog's text handler, so that it reads as the text
// format's lines do, quoting included.
func (h *Handler) message(ctx context.Context, r slog.Record) string {
	h.sink.mu.Lock()
	h.sink.buf.Reset()
	h.text.Handle(ctx, r)
	rest := strings.TrimSuffix(h.sink.buf.String(), "\n")
	h.sink.mu.Unlock()
	if rest == "" {
		return r.Message
	}
	return r.Message + " " + rest
}

// appendAttr appends a's fields: its own, or, for a group, its members'.
func (h *Handler) appendAttr(fields []Field, group string, a slog.Attr) []Field {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		if a.Key != "" {
			group += a.Key + "."
		}
		for _, m := range v.Group() {
			fields = h.appendAttr(fields, group, m)
		}
		return fields
	}
	if a.Key == "" {
		return fields
	}
	key := group + a.Key
	name, ok := h.opts.Names[key]
	if !ok {
		name = FieldName(h.opts.Prefix + key)
	}
	return append(fields, Field{name, v.String()})
}

// priority is the syslog priority (RFC 5424 §6.2.1) of a slog level.
func priority(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "3" // err
	case l >= slog.LevelWarn:
		return "4" // warning
	case l >= slog.LevelInfo:
		return "6" // info
	default:
		return "7" // debug
	}
}
