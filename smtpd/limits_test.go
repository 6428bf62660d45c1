package main

import (
	"strconv"
	"strings"
	"testing"
)

// TestQuotaAtRcpt: a recipient whose mailbox is full is refused at RCPT with 452 4.2.2,
// one whose quota is smaller than the declared SIZE with 552 5.2.2, one that has room
// for the declared SIZE is accepted; no message reaches cleanup for a refused one.
func TestQuotaAtRcpt(t *testing.T) {
	e := startEnv(t, nil)
	c := e.session()
	expect(t, c.cmd("MAIL FROM:<a@other.test>"), "250")
	expect(t, c.cmd("RCPT TO:<full@example.test>"), "452 4.2.2")
	expect(t, c.cmd("RCPT TO:<small@example.test>"), "250")
	expect(t, c.cmd("RSET"), "250")
	expect(t, c.cmd("MAIL FROM:<a@other.test> SIZE=1500"), "250")
	expect(t, c.cmd("RCPT TO:<small@example.test>"), "452 4.2.2")
	expect(t, c.cmd("RSET"), "250")
	expect(t, c.cmd("MAIL FROM:<a@other.test> SIZE=5000"), "250")
	expect(t, c.cmd("RCPT TO:<small@example.test>"), "552 5.2.2")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "250")
	expect(t, c.cmd("RSET"), "250")
	expect(t, c.cmd("MAIL FROM:<a@other.test> SIZE=900"), "250")
	expect(t, c.cmd("RCPT TO:<small@example.test>"), "250")
	if _, ok := e.waitLog("mailbox=full@example.test"); !ok {
		t.Error("the refusal is not logged with the mailbox")
	}
}

// TestQuotaAtEndOfData: a message larger than the room left (its size undeclared) is
// refused at the final dot, before cleanup queues it: 452 4.2.2 when it would fit an
// emptier mailbox, 552 5.2.2 when it is larger than the quota; with a recipient that
// has room beside, it is queued.
func TestQuotaAtEndOfData(t *testing.T) {
	e := startEnv(t, nil)
	c := e.session()
	body := strings.Repeat("x", 70) + "\r\n"
	expect(t, c.transaction("a@other.test", "small@example.test", strings.Repeat(body, 20)), "452 4.2.2")
	expect(t, c.transaction("a@other.test", "small@example.test", strings.Repeat(body, 40)), "552 5.2.2")
	// BDAT ends the same way.
	expect(t, c.cmd("MAIL FROM:<a@other.test>"), "250")
	expect(t, c.cmd("RCPT TO:<small@example.test>"), "250")
	chunk := strings.Repeat(body, 20)
	c.send("BDAT " + strconv.Itoa(len(chunk)) + " LAST\r\n" + chunk)
	expect(t, c.read(), "452 4.2.2")
	if n := len(e.cleanup.messages()); n != 0 {
		t.Fatalf("%d messages queued for a full mailbox", n)
	}
	expect(t, c.cmd("MAIL FROM:<a@other.test>"), "250")
	expect(t, c.cmd("RCPT TO:<small@example.test>"), "250")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "250")
	expect(t, c.cmd("DATA"), "354")
	expect(t, c.cmd(strings.Repeat(body, 20)+"."), "250 2.0.0")
	e.waitMessages(1)
	// A message that fits is queued.
	expect(t, c.transaction("a@other.test", "small@example.test", "short\r\n"), "250 2.0.0")
	e.waitMessages(2)
}
