package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"postern/pkg/smtp"
)

// Exit statuses of sysexits.h, which callers of sendmail (cron, PHP, mail clients) read.
const (
	exOK          = 0
	exUsage       = 64 // EX_USAGE: the command line was wrong
	exDataErr     = 65 // EX_DATAERR: the message or an address is wrong
	exUnavailable = 69 // EX_UNAVAILABLE: a service is not there (mailq)
	exSoftware    = 70 // EX_SOFTWARE: an answer that should not happen
	exIOErr       = 74 // EX_IOERR: reading the message failed
	exTempFail    = 75 // EX_TEMPFAIL: Postern is down or cannot take the message now
	exNoPerm      = 77 // EX_NOPERM: the user may not do that
	exConfig      = 78 // EX_CONFIG: the configuration cannot be read
)

// mode is what a run of sendmail does.
type mode int

const (
	modeSend       mode = iota // -bm, the default: read a message and queue it
	modeMailq                  // -bp, or run as mailq: list the queue
	modeNewaliases             // -bi, -I, or run as newaliases
	modeSMTP                   // -bs: SMTP on standard input and output
	modeFlush                  // -q: try the deferred mail again now
)

// options is a parsed command line.
type options struct {
	mode       mode
	config     string   // -C
	sender     string   // -f or -r; "<>" for the null sender
	senderSet  bool     // -f or -r given
	fullName   string   // -F
	extract    bool     // -t
	ignoreDots bool     // -i, -oi
	bodyType   string   // -B
	notify     string   // -N
	ret        string   // -R
	envID      string   // -V
	verbose    bool     // -v
	recipients []string // the operands
}

// usageError is a mistake on the command line (exit EX_USAGE).
type usageError string

func (e usageError) Error() string { return string(e) }

// argOptions take a value, in the same word (-fuser) or the next (-f user), as in
// Postfix's getopt string "A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx".
const argOptions = "ABCFLNORVXbefhopqr"

// parseArgs reads the command line as Postfix's sendmail does. The program name selects
// mailq and newaliases. Options of Sendmail that make no sense here are accepted and
// ignored, as Postfix ignores them: cron passes -oem, -odi and the like.
func parseArgs(args []string) (*options, error) {
	o := &options{}
	switch filepath.Base(args[0]) {
	case "mailq":
		o.mode = modeMailq
	case "newaliases":
		o.mode = modeNewaliases
	}
	rest := args[1:]
	for len(rest) > 0 {
		a := rest[0]
		if a == "--" {
			rest = rest[1:]
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		rest = rest[1:]
		// Letters are grouped as getopt groups them: -ti is -t -i, -oi is -o i.
		for i := 1; i < len(a); i++ {
			c := a[i]
			if !strings.ContainsRune(argOptions, rune(c)) {
				if err := o.flag(c); err != nil {
					return nil, err
				}
				continue
			}
			val := a[i+1:]
			if val == "" && c != 'q' {
				// -q alone is legal (flush); every other option needs its value.
				if len(rest) == 0 {
					return nil, usageError(fmt.Sprintf("option -%c needs a value", c))
				}
				val, rest = rest[0], rest[1:]
			}
			if err := o.value(c, val); err != nil {
				return nil, err
			}
			break
		}
	}
	if len(rest) > 0 {
		o.recipients = rest
	}
	return o, nil
}

// flag applies an option without a value.
func (o *options) flag(c byte) error {
	switch c {
	case 't':
		o.extract = true
	case 'i':
		o.ignoreDots = true
	case 'v':
		o.verbose = true
	case 'I':
		o.mode = modeNewaliases
	case 'G', 'U', 'c', 'm', 'n', 'x':
		// Sendmail's gateway submission, initial user submission, and other options
		// Postfix ignores.
	default:
		return usageError(fmt.Sprintf("unknown option -%c", c))
	}
	return nil
}

// value applies an option with a value.
func (o *options) value(c byte, v string) error {
	switch c {
	case 'C':
		o.config = v
	case 'f', 'r':
		o.sender, o.senderSet = v, true
	case 'F':
		o.fullName = v
	case 'B':
		switch strings.ToUpper(v) {
		case "7BIT", "8BITMIME":
			o.bodyType = strings.ToUpper(v)
		default:
			return usageError(fmt.Sprintf("-B %s: the body type is 7BIT or 8BITMIME", v))
		}
	case 'N':
		// RFC 3461 §4.1: NEVER alone, or any of SUCCESS, FAILURE, DELAY.
		n, ok := smtp.ParseNotify(v)
		if !ok {
			return usageError(fmt.Sprintf("-N %s: give never, or a list of success, delay and failure", v))
		}
		o.notify = n
	case 'R':
		switch strings.ToLower(v) {
		case "full", "hdrs":
			o.ret = strings.ToUpper(v)
		default:
			return usageError(fmt.Sprintf("-R %s: the return type is full or hdrs", v))
		}
	case 'V':
		if !validEnvID(v) {
			return usageError(fmt.Sprintf("-V %q: an envelope ID is 1 to 100 printable ASCII characters", v))
		}
		o.envID = v
	case 'b':
		switch v {
		case "m":
			o.mode = modeSend
		case "p":
			o.mode = modeMailq
		case "i":
			o.mode = modeNewaliases
		case "s":
			o.mode = modeSMTP
		case "d", "l":
			return usageError(fmt.Sprintf("-b%s: Postern's daemons run under master (systemctl start postern)", v))
		default:
			return usageError(fmt.Sprintf("-b%s is not supported", v))
		}
	case 'o':
		// -oi is -i; the other Sendmail options (-oem, -odb, -om, -o7 ...) are ignored,
		// as Postfix ignores them.
		if v == "i" {
			o.ignoreDots = true
		}
	case 'q':
		// -q, -q30m: flush the queue now (an interval is ignored). -qR and -qS, which
		// select a site, are not supported.
		if strings.HasPrefix(v, "R") || strings.HasPrefix(v, "S") {
			return usageError("-q" + v + " is not supported: use -q to flush the whole queue")
		}
		o.mode = modeFlush
	case 'A', 'L', 'O', 'X', 'e', 'h', 'p':
		// -Am, -Ac, a log label, -O option=value, a log file, -e, a hop count, a
		// protocol: ignored, as Postfix does.
	}
	return nil
}

// validEnvID says whether s can be an ENVID (RFC 3461 §4.4: at most 100 characters;
// printable ASCII, which the client xtext-encodes where needed).
func validEnvID(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '!' || s[i] > '~' {
			return false
		}
	}
	return true
}
