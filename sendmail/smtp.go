package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"

	"postern/pkg/config"
	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/smtp"
)

// serveSMTP is sendmail -bs: an SMTP dialogue (RFC 5321) on standard input and output,
// as Postfix's sendmail -bs holds it, for programs that speak SMTP to a local command
// rather than to a port. Each message goes to cleanup over public/cleanup, as sendmail's
// other messages do, with the Unix user recorded from the socket's credentials; it is
// acknowledged (250) only once cleanup has made its queue file durable. There is no
// AUTH and no STARTTLS: the user is the one the kernel names. The exit status is 0 when
// the client ends with QUIT or at the end of input.
func serveSMTP(cfg *config.Config, o *options, in io.Reader, out io.Writer) int {
	s := &smtpSession{
		cfg: cfg,
		o:   o,
		br:  bufio.NewReaderSize(in, 64<<10),
		bw:  bufio.NewWriter(out),
	}
	return s.run()
}

type smtpSession struct {
	cfg    *config.Config
	o      *options
	br     *bufio.Reader
	bw     *bufio.Writer
	helo   bool
	errors int
	closed bool // the session ended with 421
	// The transaction: mail says MAIL was given.
	mail     bool
	sender   string
	null     bool
	bodyType string
	rcpts    []string
}

// reply writes one reply (RFC 5321 §4.2: the code, the enhanced status code of RFC 3463
// and a text) and sends it, formatted by pkg/smtp as smtpd's are: a newline in the text
// (a refusal's, say) starts a new reply line rather than a forged one.
func (s *smtpSession) reply(code int, enhanced, format string, a ...any) error {
	s.bw.WriteString(smtp.NewReply(code, enhanced, format, a...).String())
	return s.bw.Flush()
}

// fail answers a bad command, and ends the session after too many (RFC 5321 §4.3.2
// allows 421 at any time).
func (s *smtpSession) fail(code int, enhanced, text string) bool {
	s.errors++
	if s.errors > s.cfg.SMTPD.MaxErrors {
		s.reply(421, "4.7.0", "%s Too many errors, closing", s.cfg.Hostname)
		s.closed = true
		return false
	}
	return s.reply(code, enhanced, "%s", text) == nil
}

// status is the exit status of a session that could not go on: 0 when it ended with
// 421, EX_IOERR when the output (or the input, mid-message) failed.
func (s *smtpSession) status() int {
	if s.closed {
		return exOK
	}
	return exIOErr
}

func (s *smtpSession) reset() {
	s.mail, s.sender, s.null, s.bodyType, s.rcpts = false, "", false, "", nil
}

func (s *smtpSession) run() int {
	if s.reply(220, "", "%s ESMTP Postern (sendmail -bs)", s.cfg.Hostname) != nil {
		return exIOErr
	}
	for {
		line, err := smtp.ReadLine(s.br, smtp.MaxExtendedCommandLine-2)
		switch {
		case errors.Is(err, io.EOF):
			return exOK
		case errors.Is(err, smtp.ErrLineTooLong):
			if !s.fail(500, "5.5.2", "Line too long") {
				return s.status()
			}
			continue
		case err != nil:
			return exIOErr
		}
		cmd, err := smtp.ParseCommand(line)
		if err != nil {
			if !s.fail(500, "5.5.2", "Syntax error") {
				return s.status()
			}
			continue
		}
		if ok, quit := s.command(cmd); !ok {
			return s.status()
		} else if quit {
			return exOK
		}
	}
}

// command answers one command; quit says the session is over, ok false that the
// output failed.
func (s *smtpSession) command(cmd smtp.Command) (ok, quit bool) {
	host := s.cfg.Hostname
	switch cmd.Verb {
	case "EHLO":
		if cmd.Arg == "" {
			return s.fail(501, "5.5.4", "Syntax: EHLO hostname"), false
		}
		s.helo = true
		s.reset()
		// RFC 5321 §4.1.1.1; the extensions of RFC 6152 (8BITMIME), RFC 2920
		// (PIPELINING: every reply is sent in order), RFC 2034 (ENHANCEDSTATUSCODES)
		// and RFC 1870 (SIZE).
		return s.reply(250, "", "%s\nPIPELINING\nSIZE %d\n8BITMIME\nENHANCEDSTATUSCODES", host, s.cfg.SMTPD.MaxMessageSize) == nil, false
	case "HELO":
		if cmd.Arg == "" {
			return s.fail(501, "5.5.4", "Syntax: HELO hostname"), false
		}
		s.helo = true
		s.reset()
		return s.reply(250, "", "%s", host) == nil, false
	case "MAIL":
		return s.mailFrom(cmd.Arg), false
	case "RCPT":
		return s.rcptTo(cmd.Arg), false
	case "DATA":
		if cmd.Arg != "" {
			return s.fail(501, "5.5.4", "Syntax: DATA"), false
		}
		if !s.mail || len(s.rcpts) == 0 {
			return s.fail(503, "5.5.1", "Need MAIL and RCPT first"), false
		}
		return s.data(), false
	case "RSET":
		s.reset()
		return s.reply(250, "2.0.0", "Ok") == nil, false
	case "NOOP":
		return s.reply(250, "2.0.0", "Ok") == nil, false
	case "VRFY":
		// RFC 5321 §3.5.3: 252 when the server will not verify but would accept.
		return s.reply(252, "2.5.2", "Cannot VRFY user, but will accept the message") == nil, false
	case "HELP":
		return s.reply(214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY QUIT") == nil, false
	case "QUIT":
		s.reply(221, "2.0.0", "%s closing", host)
		return true, true
	}
	return s.fail(502, "5.5.2", "Command not recognized"), false
}

func (s *smtpSession) mailFrom(arg string) bool {
	switch {
	case !s.helo:
		// RFC 5321 §4.1.4: a client starts with EHLO or HELO.
		return s.fail(503, "5.5.1", "Send EHLO or HELO first")
	case s.mail:
		return s.fail(503, "5.5.1", "Nested MAIL command")
	}
	addr, params, err := smtp.ParseMailFrom(arg, false)
	if err != nil {
		return s.fail(501, "5.1.7", "Bad sender address syntax")
	}
	body, err := params.Body()
	if err != nil || body == smtp.BodyBinaryMIME {
		return s.fail(555, "5.5.4", "Unsupported BODY parameter")
	}
	size, _, err := params.Size()
	if err != nil {
		return s.fail(501, "5.5.4", "Bad SIZE parameter")
	}
	for _, p := range params {
		if p.Key != "BODY" && p.Key != "SIZE" {
			// RFC 5321 §4.1.1.11: an unrecognized parameter gets 555.
			return s.fail(555, "5.5.4", "Unsupported parameter "+p.Key)
		}
	}
	if max := int64(s.cfg.SMTPD.MaxMessageSize); max > 0 && size > max {
		// RFC 1870 §6.
		return s.fail(552, "5.3.4", "Message size exceeds fixed limit")
	}
	s.mail, s.sender, s.null, s.bodyType = true, addr.String(), addr.IsZero(), string(body)
	return s.reply(250, "2.1.0", "Ok") == nil
}

func (s *smtpSession) rcptTo(arg string) bool {
	if !s.mail {
		return s.fail(503, "5.5.1", "Need MAIL command")
	}
	addr, params, err := smtp.ParseRcptTo(arg, false)
	if err != nil {
		return s.fail(501, "5.1.3", "Bad recipient address syntax")
	}
	if len(params) > 0 {
		return s.fail(555, "5.5.4", "Unsupported parameter "+params[0].Key)
	}
	if len(s.rcpts) >= s.cfg.SMTPD.MaxRecipients {
		// RFC 5321 §4.5.3.1.10: 452 for too many recipients.
		return s.reply(452, "4.5.3", "Too many recipients") == nil
	}
	s.rcpts = append(s.rcpts, addr.String())
	return s.reply(250, "2.1.5", "Ok") == nil
}

// data takes the message and hands it to cleanup, answering with its queue ID once
// the queue file is durable. The content is read to its end whatever happens, so that
// the dialogue stays in step.
func (s *smtpSession) data() bool {
	defer s.reset()
	if s.reply(354, "", "End data with <CR><LF>.<CR><LF>") != nil {
		return false
	}
	env := &enqueue.Local{FullName: s.o.fullName, Recipients: s.rcpts, BodyType: s.bodyType, Sender: s.sender, NullSender: s.null}
	dr := smtp.NewDataReader(s.br, smtp.DataOptions{MaxSize: int64(s.cfg.SMTPD.MaxMessageSize), MaxLineLength: s.cfg.SMTPD.MaxLineLength})
	ctx, cancel := context.WithTimeout(context.Background(), submitTimeout)
	defer cancel()
	cl := enqueue.NewClient(s.cfg.PublicSocket("cleanup"))
	defer cl.Close()
	tx, err := cl.BeginLocal(ctx, env)
	if err != nil {
		// Read the content all the same, so that the next command is a command; a
		// message too large is told so first.
		if _, dataErr := io.Copy(io.Discard, dr); dataErr != nil {
			return s.badData(dataErr)
		}
		return s.refused(err)
	}
	_, err = io.Copy(tx, dr)
	if err != nil {
		tx.Abort()
		dataErr := err
		if !errors.Is(err, smtp.ErrMessageTooLarge) && !errors.Is(err, smtp.ErrLineTooLong) && !errors.Is(err, io.ErrUnexpectedEOF) {
			// cleanup went away: read the rest.
			dataErr = nil
			if _, derr := io.Copy(io.Discard, dr); derr != nil {
				dataErr = derr
			}
		}
		if dataErr != nil {
			return s.badData(dataErr)
		}
		return s.refused(err)
	}
	res, err := tx.Commit()
	if err != nil {
		return s.refused(err)
	}
	return s.reply(250, "2.0.0", "Ok: queued as %s", res.QueueID) == nil
}

// badData answers content that broke a limit; input that ended mid-message ends the
// session.
func (s *smtpSession) badData(err error) bool {
	switch {
	case errors.Is(err, smtp.ErrMessageTooLarge):
		// RFC 5321 §4.5.3.1.7; RFC 3463 X.3.4.
		return s.reply(552, "5.3.4", "Message size exceeds fixed limit") == nil
	case errors.Is(err, smtp.ErrLineTooLong):
		return s.reply(500, "5.5.2", "Line too long") == nil
	}
	return false
}

// refused answers a message cleanup did not queue: 550 for a refusal of its content,
// 451 when Postern cannot take it now (RFC 5321 §4.2.5).
func (s *smtpSession) refused(err error) bool {
	var ie *ipc.Error
	if errors.As(err, &ie) {
		switch ie.Code {
		case enqueue.CodeRejected:
			code, text := enqueue.SplitRefusal(ie.Message, "5.7.1")
			return s.reply(550, code, "%s", text) == nil
		case "invalid":
			return s.reply(554, "5.5.4", "%s", ie.Message) == nil
		}
	}
	return s.reply(451, "4.3.0", "Message not queued, try again later: %s", strings.TrimSpace(shortErr(err))) == nil
}

// shortErr is an error's text without newlines, for a reply line.
func shortErr(err error) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(err.Error())
}
