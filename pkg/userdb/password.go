package userdb

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// MaxPasswordLen is the longest password accepted, in bytes.
const MaxPasswordLen = 1024

// HashParams are the cost parameters of argon2id (RFC 9106 §3.1).
type HashParams struct {
	// Memory is the memory cost in KiB.
	Memory uint32
	// Time is the number of passes.
	Time uint32
	// Threads is the degree of parallelism.
	Threads uint8
}

// DefaultHashParams suit a small server with two cores: the 64 MiB of the second
// recommended option of RFC 9106 §4, with one pass and two lanes (that option's three
// passes and four lanes cost a two-core machine too much per login) — some tens of
// milliseconds per password.
var DefaultHashParams = HashParams{Memory: 64 * 1024, Time: 1, Threads: 2}

const (
	saltLen = 16 // RFC 9106 §3.1 recommends 128 bits
	keyLen  = 32

	// Bounds on what a stored hash may ask for, so that a damaged or hostile record
	// cannot make a verification allocate without limit or run forever.
	maxMemory  = 1 << 20 // KiB, 1 GiB
	maxTime    = 64
	maxKeyLen  = 128
	maxSaltLen = 64
	minSaltLen = 8
	minKeyLen  = 16
)

var b64 = base64.RawStdEncoding

func (p HashParams) validate() error {
	if p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory {
		return invalid("argon2id memory %d KiB out of range", p.Memory)
	}
	if p.Time < 1 || p.Time > maxTime {
		return invalid("argon2id time %d out of range", p.Time)
	}
	if p.Threads < 1 {
		return invalid("argon2id needs at least one thread")
	}
	return nil
}

// checkPassword enforces the password rules: not empty, at most MaxPasswordLen bytes, no
// NUL (SASL PLAIN cannot carry one, RFC 4616 §2).
func checkPassword(pw string) error {
	switch {
	case pw == "":
		return invalid("empty password")
	case len(pw) > MaxPasswordLen:
		return invalid("password longer than %d bytes", MaxPasswordLen)
	case strings.IndexByte(pw, 0) >= 0:
		return invalid("password contains a NUL byte")
	}
	return nil
}

// hashPassword returns the argon2id hash of pw in the PHC string format:
// $argon2id$v=19$m=65536,t=1,p=2$<salt>$<hash>, salt and hash in unpadded base64.
func hashPassword(pw string, p HashParams) (string, error) {
	if err := p.validate(); err != nil {
		return "", err
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("reading random salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// phc is a parsed argon2id PHC string.
type phc struct {
	params HashParams
	salt   []byte
	key    []byte
}

// parseHash parses an argon2id PHC string strictly, with bounds on every parameter.
func parseHash(s string) (phc, error) {
	var h phc
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(parts) != 6 || parts[0] != "" {
		return h, invalid("password hash is not a PHC string")
	}
	if parts[1] != "argon2id" {
		return h, invalid("password hash uses %q, not argon2id", clip(parts[1]))
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return h, invalid("password hash has unsupported version %q", clip(parts[2]))
	}
	var seen [3]bool
	for kv := range strings.SplitSeq(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return h, invalid("password hash parameter %q has no value", clip(kv))
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || v != strconv.FormatUint(n, 10) {
			return h, invalid("password hash parameter %q is not a number", clip(kv))
		}
		var i int
		switch k {
		case "m":
			i, h.params.Memory = 0, uint32(n)
		case "t":
			i, h.params.Time = 1, uint32(n)
		case "p":
			if n > 255 {
				return h, invalid("password hash parallelism %d out of range", n)
			}
			i, h.params.Threads = 2, uint8(n)
		default:
			return h, invalid("password hash has unknown parameter %q", clip(k))
		}
		if seen[i] {
			return h, invalid("password hash repeats parameter %q", k)
		}
		seen[i] = true
	}
	if !seen[0] || !seen[1] || !seen[2] {
		return h, invalid("password hash lacks m, t or p")
	}
	if err := h.params.validate(); err != nil {
		return h, err
	}
	var err error
	if h.salt, err = b64.Strict().DecodeString(parts[4]); err != nil || len(h.salt) < minSaltLen || len(h.salt) > maxSaltLen {
		return h, invalid("password hash has a bad salt")
	}
	if h.key, err = b64.Strict().DecodeString(parts[5]); err != nil || len(h.key) < minKeyLen || len(h.key) > maxKeyLen {
		return h, invalid("password hash has a bad key")
	}
	return h, nil
}

// checkHash compares pw with a stored hash in constant time.
func checkHash(stored, pw string) (bool, error) {
	h, err := parseHash(stored)
	if err != nil {
		return false, err
	}
	key := argon2.IDKey([]byte(pw), h.salt, h.params.Time, h.params.Memory, h.params.Threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(key, h.key) == 1, nil
}
