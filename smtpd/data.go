package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/smtp"
)

// Message content goes from the client's input through pkg/smtp's DataReader (DATA) or
// LineNormalizer (BDAT) straight into a cleanup transaction; the message is never held
// in memory. The reply 250 comes only once cleanup has answered with a queue ID, that
// is once the queue file is durable.

// txBuffers are the buffers of one message on its way to cleanup, shared by the
// sessions through a pool: a writer that gathers content into large frames, and the
// buffer io.CopyBuffer uses for DATA.
type txBuffers struct {
	w   *bufio.Writer
	buf []byte
}

var txPool = sync.Pool{New: func() any {
	return &txBuffers{w: bufio.NewWriterSize(nil, 32<<10), buf: make([]byte, 32<<10)}
}}

// txWriter gives bufio.Writer the Tx's Write alone, so that it gathers small writes
// instead of handing its reader to Tx.ReadFrom.
type txWriter struct{ tx *enqueue.Tx }

func (w txWriter) Write(p []byte) (int, error) { return w.tx.Write(p) }

// sink passes message content on to cleanup. It never fails: the first write error is
// kept in err and the rest of the content is dropped, so that the message is still
// read to its end and the session stays in step with the client.
type sink struct {
	tx   *enqueue.Tx
	bufs *txBuffers
	err  error
	n    int64 // octets passed on
	last byte  // the last octet passed on
}

func (k *sink) Write(p []byte) (int, error) {
	if k.err == nil && len(p) > 0 {
		_, k.err = k.bufs.w.Write(p)
		k.n += int64(len(p))
		k.last = p[len(p)-1]
	}
	return len(p), nil
}

// commit sends what is buffered and asks cleanup to queue the message.
func (k *sink) commit() (enqueue.Result, error) {
	defer k.release()
	if k.err == nil {
		k.err = k.bufs.w.Flush()
	}
	if k.err != nil {
		k.tx.Abort()
		return enqueue.Result{}, k.err
	}
	return k.tx.Commit()
}

// abort discards the message.
func (k *sink) abort() {
	if k.bufs == nil {
		return
	}
	k.tx.Abort()
	k.release()
}

func (k *sink) release() {
	k.bufs.w.Reset(nil)
	txPool.Put(k.bufs)
	k.bufs = nil
}

// begin starts the message of tx at cleanup. The client has until dataDeadline to send
// it.
func (s *session) begin(tx *transaction, dataDeadline time.Time) (*sink, error) {
	ctx, cancel := context.WithDeadline(context.Background(), s.txDeadline(dataDeadline))
	defer cancel()
	t, err := s.srv.cleanup.Begin(ctx, s.envelope(tx))
	if err != nil {
		return nil, err
	}
	bufs := txPool.Get().(*txBuffers)
	bufs.w.Reset(txWriter{t})
	return &sink{tx: t, bufs: bufs}, nil
}

func (s *session) dataOptions() smtp.DataOptions {
	return smtp.DataOptions{MaxSize: s.srv.maxSize, MaxLineLength: s.srv.maxLine}
}

// dataSequence checks that a message may be sent now (RFC 5321 §3.3).
func (s *session) dataSequence() (reply, bool) {
	tx := s.tx
	switch {
	case s.helo == "":
		return rHeloFirst, false
	case tx == nil:
		return rNeedMail, false
	case len(tx.rcpts) == 0 && tx.rcptTries > 0:
		return rNoValidRcpt, false
	case len(tx.rcpts) == 0:
		return rNeedRcpt, false
	}
	return reply{}, true
}

// cmdData serves DATA (RFC 5321 §4.1.1.4).
func (s *session) cmdData(arg string) {
	tx := s.tx
	if tx != nil && tx.bdat != nil {
		// RFC 3030 §2: the transaction is in an indeterminate state; the client must
		// send RSET.
		s.reply(rMixedBdat)
		return
	}
	if r, ok := s.dataSequence(); !ok {
		s.reply(r)
		return
	}
	if arg != "" {
		s.reply(rNoArgs)
		return
	}
	deadline := time.Now().Add(s.srv.dataTimeout)
	k, err := s.begin(tx, deadline)
	if err != nil {
		// Before 354: the client sends no content.
		s.log.Error("cannot reach cleanup", "err", err)
		s.reply(rQueueFail)
		s.tx = nil
		return
	}
	s.tx = nil // whatever happens next ends the transaction
	s.write(rStartData)
	s.raw.SetReadDeadline(deadline)
	dr := smtp.NewDataReader(s.br, s.dataOptions())
	_, err = io.CopyBuffer(k, dr, k.bufs.buf)
	from := slogAddr(tx.from)
	switch {
	case errors.Is(err, smtp.ErrMessageTooLarge):
		k.abort()
		s.reply(rTooBig, "from", from, "size", dr.Size())
	case errors.Is(err, smtp.ErrLineTooLong):
		k.abort()
		s.reply(rLongLines, "from", from, "size", dr.Size())
	case err != nil:
		k.abort()
		s.quit = true
		s.readFailed(err)
	case k.err != nil:
		k.abort()
		s.log.Error("streaming to cleanup failed", "err", k.err)
		s.reply(rQueueFail, "from", from)
	default:
		s.commit(k, tx, dr.Size())
	}
}

// commit has cleanup queue the message and answers the client.
func (s *session) commit(k *sink, tx *transaction, size int64) {
	if r, refuse := s.quotaAtEnd(tx, size); refuse {
		k.abort()
		s.reply(r, "from", slogAddr(tx.from), "size", size)
		return
	}
	res, err := k.commit()
	var refused *ipc.Error
	if errors.As(err, &refused) && refused.Code == enqueue.CodeRejected {
		// cleanup refused the content: a From: header the user may not use, spamd's
		// verdict. RFC 3463 X.7.1 unless cleanup named another (5.7.23 for SPF, RFC
		// 7372); RFC 5321 §4.2.5 lets the end of data get a 5yz.
		code, text := enqueue.SplitRefusal(refused.Message, "5.7.1")
		s.reply(newReply(550, code, "%s", text), "from", slogAddr(tx.from), "user", s.authUser)
		return
	}
	if errors.As(err, &refused) && refused.Code == enqueue.CodeTempfail {
		code, text := enqueue.SplitRefusal(refused.Message, "4.7.1")
		s.reply(newReply(451, code, "%s", text), "from", slogAddr(tx.from))
		return
	}
	if err != nil {
		s.log.Error("cleanup did not queue the message", "err", err)
		s.reply(rQueueFail, "from", slogAddr(tx.from))
		return
	}
	// The line of DESIGN.md, as cleanup logs it too; the client comes last.
	s.srv.log.Info("queued", "id", res.QueueID, "from", slogAddr(tx.from), "size", size, "nrcpt", len(tx.rcpts),
		"client", s.ip.String(), "listener", s.policy.name)
	s.reply(newReply(250, "2.0.0", "Ok: queued as %s", res.QueueID))
}

// bdatTransfer is a message being received in chunks (RFC 3030).
type bdatTransfer struct {
	sink     *sink // nil once the transfer failed
	norm     *smtp.LineNormalizer
	deadline time.Time // for the whole message
	received int64     // octets of the chunks so far, as sent
	// failed is the reply of a failed transfer; later chunks are read, discarded and
	// answered with it again (RFC 3030 §2).
	failed   *reply
	reported bool
}

func (b *bdatTransfer) abort() {
	if b.sink != nil {
		b.sink.abort()
		b.sink = nil
	}
}

func (b *bdatTransfer) fail(r reply) {
	b.abort()
	b.failed = &r
}

// cmdBdat serves BDAT (RFC 3030 §2).
func (s *session) cmdBdat(arg string) {
	size, last, ok := parseBdat(arg)
	if !ok {
		// Without its size the end of the chunk is unknown, and what follows cannot
		// be told from commands: end the session rather than run message content.
		s.reply(rBdatSyntax)
		s.quit = true
		return
	}
	tx := s.tx
	if r, ok := s.dataSequence(); !ok {
		// RFC 3030 §2: a refused chunk is read and discarded all the same.
		s.raw.SetReadDeadline(time.Now().Add(s.srv.dataTimeout))
		if err := s.readChunk(io.Discard, size); err != nil {
			s.quit = true
			s.readFailed(err)
			return
		}
		s.reply(r)
		return
	}
	b := tx.bdat
	if b == nil {
		b = &bdatTransfer{deadline: time.Now().Add(s.srv.dataTimeout)}
		tx.bdat = b
		k, err := s.begin(tx, b.deadline)
		if err != nil {
			s.log.Error("cannot reach cleanup", "err", err)
			b.fail(rQueueFail)
		} else {
			b.sink = k
			b.norm = smtp.NewLineNormalizer(k, s.dataOptions())
		}
	}
	if b.failed == nil && size > s.srv.maxSize-b.received {
		// Line endings only grow in normalization: the message is too large.
		b.fail(rTooBig)
	}
	b.received = min(b.received+size, math.MaxInt64/2) // sizes have at most 18 digits
	s.raw.SetReadDeadline(b.deadline)
	var err error
	if b.failed == nil {
		err = s.readChunk(b.norm, size)
	} else {
		err = s.readChunk(io.Discard, size)
	}
	if err != nil {
		b.abort()
		s.quit = true
		s.readFailed(err)
		return
	}
	if b.failed == nil && last {
		b.norm.Close()
		// The queue holds lines ending in CRLF; a message sent in chunks need not
		// end with one.
		if b.sink.n > 0 && b.sink.last != '\n' {
			b.sink.Write([]byte("\r\n"))
		}
	}
	if b.failed == nil {
		switch err := b.norm.Err(); {
		case errors.Is(err, smtp.ErrLineTooLong):
			b.fail(rLongLines)
		case err != nil:
			b.fail(rTooBig)
		case b.sink.err != nil:
			s.log.Error("streaming to cleanup failed", "err", b.sink.err)
			b.fail(rQueueFail)
		}
	}
	if last {
		s.tx = nil
	}
	switch {
	case b.failed != nil && !b.reported:
		b.reported = true
		s.reply(*b.failed, "from", slogAddr(tx.from), "size", b.received)
	case b.failed != nil:
		s.write(*b.failed) // counted once
	case !last:
		s.reply(newReply(250, "2.0.0", "%d octets received", size))
	default:
		k := b.sink
		b.sink = nil
		s.commit(k, tx, b.norm.Size())
	}
}

// readChunk passes the next size octets of input to w, straight from the read buffer.
func (s *session) readChunk(w io.Writer, size int64) error {
	for size > 0 {
		if s.br.Buffered() == 0 {
			if _, err := s.br.Peek(1); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		n := int(min(size, int64(s.br.Buffered())))
		p, _ := s.br.Peek(n)
		w.Write(p) // the sink and LineNormalizer over it keep their errors
		s.br.Discard(n)
		size -= int64(n)
	}
	return nil
}

// maxChunkDigits bounds the chunk size so that it fits an int64.
const maxChunkDigits = 18

// parseBdat parses the argument of BDAT: chunk-size [SP "LAST"] (RFC 3030 §2).
func parseBdat(arg string) (size int64, last, ok bool) {
	num, rest, hasRest := strings.Cut(arg, " ")
	if hasRest {
		if !strings.EqualFold(strings.TrimLeft(rest, " "), "LAST") {
			return 0, false, false
		}
		last = true
	}
	if num == "" || len(num) > maxChunkDigits {
		return 0, false, false
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return 0, false, false
		}
		size = size*10 + int64(num[i]-'0')
	}
	return size, last, true
}

// slogAddr formats a reverse-path for logs: <a@b>, <> for the null path.
func slogAddr(a smtp.Address) string { return "<" + a.String() + ">" }
