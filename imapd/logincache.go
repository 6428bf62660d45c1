package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"net/netip"
	"sync"
	"time"
)

// loginCache remembers recent successful logins for a short while, as Dovecot's
// auth_cache does, so that a client that opens many connections (one per folder, or a
// reconnect after every IDLE timeout) does not cost authd an argon2 hash each time.
// Only successes are kept, under an HMAC of user, password and client address with a key
// made at start; failures always go to authd, which throttles them. The client address is
// part of the key so that a login from elsewhere always reaches authd's throttling: else
// a guesser that authd refuses would still get the right password through here within a
// minute of the owner's login. authd's account changes drop an account's entries (see
// accountWatch): a changed password, a revoked app password, a disabled or deleted
// account stop working here at once.
type loginCache struct {
	key []byte

	mu      sync.Mutex
	entries map[[32]byte]loginEntry
}

// loginEntry is a remembered login: the account's address, Maildir and quota.
type loginEntry struct {
	addr, maildir string
	quota         int64
	expires       time.Time
}

const (
	loginCacheTTL = time.Minute
	loginCacheMax = 10000
)

func newLoginCache() *loginCache {
	key := make([]byte, 32)
	rand.Read(key)
	return &loginCache{key: key, entries: map[[32]byte]loginEntry{}}
}

func (c *loginCache) sum(user, password string, client netip.Addr) [32]byte {
	h := hmac.New(sha256.New, c.key)
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(password))
	h.Write([]byte{0})
	h.Write(client.AsSlice())
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

func (c *loginCache) get(user, password string, client netip.Addr) (loginEntry, bool) {
	k := c.sum(user, password, client)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || time.Now().After(e.expires) {
		delete(c.entries, k)
		return loginEntry{}, false
	}
	return e, true
}

func (c *loginCache) put(user, password string, client netip.Addr, addr, maildir string, quota int64) {
	k := c.sum(user, password, client)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= loginCacheMax {
		for k, e := range c.entries {
			if now.After(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= loginCacheMax {
			clear(c.entries)
		}
	}
	c.entries[k] = loginEntry{addr: addr, maildir: maildir, quota: quota, expires: now.Add(loginCacheTTL)}
}

// dropAccount removes the entries of the account addr and returns how many there were.
func (c *loginCache) dropAccount(addr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, e := range c.entries {
		if e.addr == addr {
			delete(c.entries, k)
			n++
		}
	}
	return n
}

// clear removes every entry.
func (c *loginCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}
