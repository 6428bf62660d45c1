package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"postern/pkg/auth"
	"postern/pkg/delivery"
	"postern/pkg/enqueue"
	"postern/pkg/mime"
	"postern/pkg/sieve"
)

// Vacation replies (RFC 5230): a script's vacation action is carried out once the
// message it answers is delivered (or discarded as the script says). The reply is not
// sent to senders RFC 5230 §4.5 and §4.6 rule out (sieve.Vacation.Exempt), nor for mail
// spamd judged junk; it is sent at most once per sender, reply handle and period, which
// local remembers in <data>/local/vacation.db (bbolt), a file no other process opens
// (ARCHITECTURE rule 1). The reply enters the queue through cleanup, from the null
// sender, as an automatic reply of the account (enqueue.Envelope.AutoReply), so that
// it is DKIM-signed and retried like any outbound mail. Whatever becomes of the reply,
// the delivery of the message it answers stands: a reply that cannot be queued is
// logged, with the original's queue ID, and not remembered, so a later message from
// the same sender may get one.

// vacationBucket holds one key per (account, sender, handle): the time, in Unix
// seconds big-endian, until which that sender gets no other reply.
var vacationBucket = []byte("vacation")

// vacationMemory is local's memory of the replies sent.
type vacationMemory struct{ db *bolt.DB }

// openVacationMemory opens (creating it if need be) the memory at path.
func openVacationMemory(path string) (*vacationMemory, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating local's directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("opening %s: another local holds it", path)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(vacationBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return &vacationMemory{db: db}, nil
}

// Close closes the database.
func (m *vacationMemory) Close() error { return m.db.Close() }

// vacationKey names the replies of account to sender under handle.
func vacationKey(account, sender, handle string) []byte {
	return []byte(strings.ToLower(account) + "\x00" + strings.ToLower(sender) + "\x00" + handle)
}

// answered reports whether key was answered within its period, as of now.
func (m *vacationMemory) answered(key []byte, now time.Time) (bool, error) {
	var until int64
	err := m.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(vacationBucket).Get(key); len(v) == 8 {
			until = int64(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	return until > now.Unix(), err
}

// remember records that key was answered and gets no other reply before until.
func (m *vacationMemory) remember(key []byte, until time.Time) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(until.Unix()))
	return m.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(vacationBucket).Put(key, v[:]) })
}

// sweep forgets the replies whose period is over, and says how many.
func (m *vacationMemory) sweep(now time.Time) (int, error) {
	n := 0
	err := m.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(vacationBucket).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) <= now.Unix() {
				if err := c.Delete(); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	return n, err
}

// vacationSweep is how often local forgets the replies whose period is over.
const vacationSweep = time.Hour

// keepSweeping sweeps the memory every vacationSweep until ctx ends.
func (m *vacationMemory) keepSweeping(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(vacationSweep)
	defer t.Stop()
	for {
		if n, err := m.sweep(time.Now()); err != nil {
			log.Error("vacation: cannot forget expired replies", "err", err)
		} else if n > 0 {
			log.Info("vacation: expired replies forgotten", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// replyTimeout bounds the queueing of one reply, authd's answer included.
const replyTimeout = 30 * time.Second

// vacation carries out the vacation action v of recipient r for the message of req,
// whose header is h, once the message itself is delivered.
func (a *Agent) vacation(req *delivery.Request, r delivery.Recipient, v *sieve.Vacation, h *mime.Header, log *slog.Logger) {
	log = log.With("sender", "<"+req.From+">")
	if a.Vacations == nil || a.Submit == nil {
		log.Warn("vacation: replies are not available (no memory or no queue); not answered")
		return
	}
	if req.Spam || r.Spam {
		log.Info("vacation: not answered", "why", "judged junk")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
	defer cancel()
	// The user's addresses: the account's, the one the message came to, and, asked
	// of authd only when those do not settle it, the aliases that lead to the account.
	var sa *auth.SendAsResult
	mine := func(addr string) bool {
		if strings.EqualFold(addr, r.Addr) || (r.ORcpt != "" && strings.EqualFold(addr, r.ORcpt)) {
			return true
		}
		if sa == nil {
			sa = &auth.SendAsResult{Addresses: []string{strings.ToLower(r.Addr)}}
			if a.SendAs != nil {
				res, err := a.SendAs(ctx, r.Addr)
				if err != nil {
					log.Warn("vacation: cannot ask authd for the account's aliases; judging by the account's address alone", "err", err)
				} else {
					sa = &res
				}
			}
		}
		return sa.Allows(addr)
	}
	if why := v.Exempt(&sieve.Message{Header: h, From: req.From, To: r.Addr}, mine); why != "" {
		log.Info("vacation: not answered", "why", why)
		return
	}
	key := vacationKey(r.Addr, req.From, v.Handle)
	// Two messages from one sender delivered at once wait for each other here: one
	// reply between them.
	defer a.claim("vacation\x00" + string(key))()
	now := time.Now()
	if done, err := a.Vacations.answered(key, now); err != nil {
		log.Error("vacation: cannot read the memory of replies; not answered", "err", err)
		return
	} else if done {
		log.Info("vacation: not answered", "why", "answered already within the period")
		return
	}
	from := r.Addr
	if v.From != "" {
		// RFC 5230 §4.3: :from is used when it is one of the user's addresses; cleanup
		// would refuse any other.
		if fa, err := mail.ParseAddress(v.From); err == nil && mine(fa.Address) {
			from = fa.String()
		} else {
			log.Info("vacation: :from is not one of the user's addresses; replying from the account's", "from", v.From)
		}
	}
	domain := r.Addr[strings.LastIndexByte(r.Addr, '@')+1:]
	msg := v.Reply(h, sieve.ReplyHeaders{From: from, To: req.From, Date: now, MessageID: "<" + randomID() + "@" + domain + ">"})
	env := &enqueue.Envelope{AutoReply: true, AuthUser: r.Addr, Recipients: []enqueue.Recipient{{Addr: req.From}}}
	if !isASCIIBytes(msg) {
		env.BodyType = "8BITMIME"
	}
	if !isASCIIBytes([]byte(req.From)) {
		env.SMTPUTF8 = true
	}
	id, err := a.Submit(ctx, env, msg)
	if err != nil {
		log.Warn("vacation: reply not queued", "err", err)
		return
	}
	if v.Period > 0 {
		if err := a.Vacations.remember(key, now.Add(v.Period)); err != nil {
			log.Error("vacation: reply queued but not remembered", "reply_id", id, "err", err)
		}
	}
	log.Info("vacation: reply queued", "reply_id", id, "period", v.Period.String())
}

func randomID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func isASCIIBytes(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
