package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"postern/pkg/delivery"
	"postern/pkg/smtp"
)

var errConnRefused = syscall.ECONNREFUSED

// message is the message of one delivery request: the queue file's descriptor and
// where the message lies in it, with its envelope.
type message struct {
	id        string
	from      string
	f         *os.File
	off, size int64
	bodyType  string // "", 7BIT or 8BITMIME
	smtputf8  bool
	envid     string
	ret       string

	scanOnce     sync.Once
	eightBit     bool // the message holds an octet above 127
	utf8Headers  bool // ... in its header section
	scanErr      error
	needsUTF8Env bool // an envelope address is not ASCII
}

// body returns a reader of the message that reads it from the file as it goes: the
// message is never held in memory whole.
func (m *message) body() io.Reader {
	return delivery.Body(m.f, m.off, m.size)
}

// scan reads the message once to learn whether it holds 8-bit octets, in its header
// section or anywhere. It is needed only when a server lacks 8BITMIME or SMTPUTF8.
func (m *message) scan() error {
	m.scanOnce.Do(func() {
		r := bufio.NewReaderSize(m.body(), 32<<10)
		inHeader, lineStart := true, true
		for {
			chunk, err := r.ReadSlice('\n')
			if len(chunk) > 0 {
				if inHeader && lineStart && (bytes.Equal(chunk, []byte("\r\n")) || bytes.Equal(chunk, []byte("\n"))) {
					inHeader = false
				}
				if !isASCII(chunk) {
					m.eightBit = true
					if inHeader {
						m.utf8Headers = true
					}
				}
				lineStart = chunk[len(chunk)-1] == '\n'
			}
			if m.utf8Headers || (m.eightBit && !inHeader) {
				return // nothing more to learn
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				m.scanErr = err
				return
			}
		}
	})
	return m.scanErr
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func isASCIIString(s string) bool { return isASCII([]byte(s)) }

// outcome is what a transaction did for one recipient.
type outcome struct {
	res delivery.Result
	// retry: the server asked for fewer recipients per message (452, RFC 5321
	// §4.5.3.1.10); send to this one in another transaction.
	retry bool
}

// sessionError is a failure of the connection before the server said anything about
// the message: another connection, or another MX, may do better.
type sessionError struct{ err error }

func (e *sessionError) Error() string { return e.err.Error() }
func (e *sessionError) Unwrap() error { return e.err }

// transact makes one mail transaction for rcpts on s (RFC 5321 §3.3): MAIL FROM, RCPT TO
// for each, DATA, the message; pipelined when the server allows (RFC 2920). It returns
// one outcome per recipient, or a *sessionError when the connection failed before the
// server answered MAIL FROM.
func (s *session) transact(msg *message, rcpts []delivery.Recipient) ([]outcome, error) {
	out := make([]outcome, len(rcpts))
	all := func(res delivery.Result) ([]outcome, error) {
		for i := range out {
			out[i] = outcome{res: res}
		}
		return out, nil
	}
	// What this server can take, decided before a word about the message is said.
	needUTF8 := msg.needsUTF8Env
	if msg.smtputf8 && !needUTF8 && !s.ext.smtputf8 {
		if err := msg.scan(); err != nil {
			return all(s.own(delivery.Deferred, "4.3.0", "cannot read the queue file: "+err.Error()))
		}
		needUTF8 = msg.utf8Headers
	}
	if needUTF8 && !s.ext.smtputf8 {
		// RFC 6531 §3.2: without SMTPUTF8 at the server, a message that needs it cannot
		// be sent. The enhanced status codes of the SMTPUTF8 extension say why: X.6.7
		// (non-ASCII addresses not permitted), X.6.9 (a UTF-8 header message cannot be
		// transferred).
		code, what := "5.6.7", "its envelope addresses are not ASCII"
		if !msg.needsUTF8Env {
			code, what = "5.6.9", "its header section is not ASCII"
		}
		return all(s.own(delivery.Bounced, code, fmt.Sprintf("the server %s does not support SMTPUTF8, which this message needs (%s)", s.relay, what)))
	}
	if strings.EqualFold(msg.bodyType, "8BITMIME") && !s.ext.eightBit {
		if err := msg.scan(); err != nil {
			return all(s.own(delivery.Deferred, "4.3.0", "cannot read the queue file: "+err.Error()))
		}
		if msg.eightBit {
			// RFC 6152 §3: 8-bit data must not go to a server that did not announce
			// 8BITMIME. Postern does not convert messages (that would break DKIM
			// signatures), so it returns them (RFC 3463 X.6.3).
			return all(s.own(delivery.Bounced, "5.6.3", fmt.Sprintf("the server %s does not support 8BITMIME and the message has 8-bit content, which RFC 6152 does not allow to send it", s.relay)))
		}
	}
	if s.ext.maxSize > 0 && msg.size > s.ext.maxSize {
		// RFC 1870 §6: the server's limit is final (RFC 3463 X.3.4).
		return all(s.own(delivery.Bounced, "5.3.4", fmt.Sprintf("message size %d exceeds the limit %d of the server %s", msg.size, s.ext.maxSize, s.relay)))
	}

	mail := "MAIL FROM:<" + msg.from + ">"
	if s.ext.size {
		mail += " SIZE=" + strconv.FormatInt(msg.size, 10) // RFC 1870 §6
	}
	if s.ext.eightBit && strings.EqualFold(msg.bodyType, "8BITMIME") {
		mail += " BODY=8BITMIME" // RFC 6152 §2
	}
	if s.ext.smtputf8 && (msg.smtputf8 || needUTF8) {
		mail += " SMTPUTF8" // RFC 6531 §3.4
	}
	if s.ext.dsn {
		// RFC 3461 §4.3, §4.4: passed on as the client gave them.
		if msg.ret != "" && isKeywordList(msg.ret) {
			mail += " RET=" + msg.ret
		}
		if msg.envid != "" {
			mail += " ENVID=" + xtext(msg.envid)
		}
	}
	lines := []string{mail}
	for _, r := range rcpts {
		l := "RCPT TO:<" + r.Addr + ">"
		if s.ext.dsn {
			if r.Notify != "" && isKeywordList(r.Notify) {
				l += " NOTIFY=" + r.Notify
			}
			// RFC 3461 §4.2: ORCPT=rfc822;xtext. A UTF-8 original address would need
			// RFC 6533's utf-8 type; it is left out instead.
			if o := bareAddr(r.ORcpt); o != "" && isASCIIString(o) {
				l += " ORCPT=rfc822;" + xtext(o)
			}
		}
		lines = append(lines, l)
	}

	// RFC 2920 §3.1: MAIL, RCPT and DATA may go in one group, DATA last; without
	// PIPELINING each command waits for its reply.
	var mailRep smtp.Reply
	rcptReps := make([]smtp.Reply, len(rcpts))
	var dataRep smtp.Reply
	accepted := 0
	t := s.timeouts.command
	if s.ext.pipelining {
		for _, l := range append(lines, "DATA") {
			if err := s.send(t, l); err != nil {
				return nil, &sessionError{fmt.Errorf("%s: sending MAIL FROM: %w", s.relay, plainNetError(err))}
			}
		}
		if err := s.flush(); err != nil {
			return nil, &sessionError{fmt.Errorf("%s: sending MAIL FROM: %w", s.relay, err)}
		}
		rep, err := s.read(t)
		if err != nil {
			return nil, &sessionError{fmt.Errorf("%s: reading the reply to MAIL FROM: %w", s.relay, err)}
		}
		mailRep = rep
		s.inTx = mailRep.Code/100 == 2
		for i := range rcpts {
			if rcptReps[i], err = s.read(t); err != nil {
				return s.lost(out, "RCPT TO", err)
			}
			if mailRep.Code/100 == 2 && rcptReps[i].Code/100 == 2 {
				accepted++
			}
		}
		if dataRep, err = s.read(t); err != nil {
			return s.lost(out, "DATA", err)
		}
	} else {
		rep, err := s.cmd(t, lines[0])
		if err != nil {
			return nil, &sessionError{fmt.Errorf("%s: MAIL FROM: %w", s.relay, err)}
		}
		mailRep = rep
		s.inTx = mailRep.Code/100 == 2
		if mailRep.Code/100 == 2 {
			for i := range rcpts {
				if rcptReps[i], err = s.cmd(t, lines[1+i]); err != nil {
					return s.lost(out, "RCPT TO", err)
				}
				if rcptReps[i].Code/100 == 2 {
					accepted++
				}
			}
			if accepted > 0 {
				if dataRep, err = s.cmd(t, "DATA"); err != nil {
					return s.lost(out, "DATA", err)
				}
			}
		}
	}

	if dataRep.Code == 354 && accepted == 0 {
		// RFC 2920 §3.1: the server should have refused DATA without a sender or
		// recipients; end the empty message, ignore the reply, and stay in step.
		if _, err := s.cmd(t, "."); err != nil {
			s.broken = true
		}
		s.inTx = false
	}
	if mailRep.Code/100 != 2 {
		// The sender was refused: the verdict for every recipient (RFC 5321 §4.1.1.2).
		return all(s.replyResult(mailRep, "MAIL FROM"))
	}
	for i, rep := range rcptReps {
		switch {
		case rep.Code/100 == 2:
		case (rep.Code == 452 || rep.Code == 552) && accepted > 0:
			// RFC 5321 §4.5.3.1.10: too many recipients; the rest go in the next
			// transaction.
			out[i] = outcome{retry: true, res: s.replyResult(rep, "RCPT TO")}
		case rep.Code == 552:
			// RFC 5321 §4.5.3.1.10: 552 to RCPT is RFC 821's old "too many
			// recipients", to be treated as temporary.
			res := s.replyResult(rep, "RCPT TO")
			res.Status = delivery.Deferred
			res.Code = "4" + strings.TrimPrefix(res.Code, "5")
			out[i] = outcome{res: res}
		default:
			out[i] = outcome{res: s.replyResult(rep, "RCPT TO")}
		}
	}
	if accepted == 0 {
		return out, nil
	}
	if dataRep.Code != 354 {
		return s.forAccepted(out, rcptReps, s.replyResult(dataRep, "DATA")), nil
	}

	// The message, dot-stuffed (RFC 5321 §4.5.2), streamed from the queue file.
	s.conn.SetWriteDeadline(deadline(s.timeouts.data))
	dw := smtp.NewDataWriter(s.w)
	buf := make([]byte, 32<<10)
	_, err := io.CopyBuffer(dw, msg.body(), buf)
	if err == nil {
		err = dw.Close()
	}
	if err == nil {
		err = s.flush()
	}
	if err != nil {
		var rerr *delivery.ReadError
		if errors.As(err, &rerr) {
			// The queue file, not the network: the connection is in the middle of a
			// message and cannot be used again.
			s.close()
			return s.forAccepted(out, rcptReps, s.own(delivery.Deferred, "4.3.0", "cannot read the queue file: "+rerr.Error())), nil
		}
		s.broken = true
		return s.forAccepted(out, rcptReps, s.own(delivery.Deferred, "4.4.2", fmt.Sprintf("lost connection with %s while sending the message: %v", s.relay, plainNetError(err)))), nil
	}
	// RFC 5321 §4.5.3.2.6: up to 10 minutes for the reply to the final dot.
	rep, err := s.read(s.timeouts.data)
	s.inTx = false
	if err != nil {
		// The server may have taken the message: the recipients are tried again and
		// may get it twice, which is better than never (RFC 1047).
		return s.forAccepted(out, rcptReps, s.own(delivery.Deferred, "4.4.2", fmt.Sprintf("lost connection with %s after sending the message: %v", s.relay, err))), nil
	}
	return s.forAccepted(out, rcptReps, s.replyResult(rep, "end of DATA")), nil
}

// forAccepted gives res to the recipients the server accepted.
func (s *session) forAccepted(out []outcome, rcptReps []smtp.Reply, res delivery.Result) []outcome {
	for i, rep := range rcptReps {
		if rep.Code/100 == 2 {
			out[i] = outcome{res: res}
		}
	}
	return out
}

// lost ends a transaction whose connection failed after MAIL FROM was answered:
// every recipient without a verdict is deferred.
func (s *session) lost(out []outcome, what string, err error) ([]outcome, error) {
	s.close()
	res := s.own(delivery.Deferred, "4.4.2", fmt.Sprintf("lost connection with %s while sending %s: %v", s.relay, what, err))
	for i := range out {
		if out[i].res.Status == "" {
			out[i] = outcome{res: res}
		}
	}
	return out, nil
}

// replyResult turns a server's reply into a result: 2xx sent, 4xx deferred, 5xx
// bounced, with the reply as the reason (the Diagnostic-Code of a DSN) and the server
// as the relay.
func (s *session) replyResult(rep smtp.Reply, what string) delivery.Result {
	status := delivery.Deferred
	switch rep.Code / 100 {
	case 2:
		status = delivery.Sent
	case 5:
		status = delivery.Bounced
	}
	return delivery.Result{Status: status, Code: enhancedCode(rep), Reason: replyText(rep), Relay: s.relay}
}

// own is a result in Postern's own words: the relay is "none", so that a DSN does not
// present them as the server's reply; the reason names the server.
func (s *session) own(status, code, reason string) delivery.Result {
	return delivery.Result{Status: status, Code: code, Reason: reason, Relay: "none"}
}

// xtext encodes s for ENVID and ORCPT (RFC 3461 §4): "+", "=" and octets outside
// "!".."~" become "+HH".
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '!' || c > '~' || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// isKeywordList reports whether s is letters and commas only, as the values of RET and
// NOTIFY are (RFC 3461 §4.1, §4.3): nothing from the queue file may smuggle a command.
func isKeywordList(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == ',') {
			return false
		}
	}
	return true
}

// bareAddr strips an "rfc822;" type and angle brackets from an original recipient.
func bareAddr(s string) string {
	if t, rest, ok := strings.Cut(s, ";"); ok && !strings.ContainsAny(t, "@<") {
		s = rest
	}
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "<")
	s = strings.TrimSuffix(s, ">")
	return s
}

func deadline(d time.Duration) time.Time { return time.Now().Add(d) }
