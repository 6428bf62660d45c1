package userdb

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Limits on aliases.
const (
	// MaxAliasDepth is how many aliases may lead one to the next before an address
	// reaches its final targets.
	MaxAliasDepth = 10
	// MaxAliasTargets is the most targets one alias may have.
	MaxAliasTargets = 1000
)

// Alias sends mail for Address to Targets. An Address of the form "@domain" is the
// domain's catch-all: it takes mail for every address of the domain that is neither an
// account nor an alias.
type Alias struct {
	Address string
	// Targets are addresses: accounts or aliases of our domains (kept in lower case) or
	// external addresses (kept as given, but for the domain's case).
	Targets []string
	Created time.Time
}

type aliasRecord struct {
	Targets []string  `json:"targets"`
	Created time.Time `json:"created"`
}

// aliasKey checks the address of an alias ("local@domain" or "@domain") and returns it
// canonical, with its domain.
func aliasKey(addr string) (key, domain string, err error) {
	if rest, ok := strings.CutPrefix(addr, "@"); ok {
		d, err := CanonicalDomain(rest)
		if err != nil {
			return "", "", err
		}
		return "@" + d, d, nil
	}
	local, d, err := ParseAddress(addr)
	if err != nil {
		return "", "", err
	}
	return local + "@" + d, d, nil
}

// IsCatchAll reports whether an alias address is a domain's catch-all ("@domain").
func IsCatchAll(addr string) bool { return strings.HasPrefix(addr, "@") }

func getAlias(tx *bolt.Tx, domain, key string) []byte {
	b := tx.Bucket(bucketAliases).Bucket([]byte(domain))
	if b == nil {
		return nil
	}
	return b.Get([]byte(key))
}

// AddAlias creates an alias (or, for "@domain", the domain's catch-all) in an existing
// domain. Targets that belong to one of our domains are stored in lower case; external
// ones keep their local part as given. An address that is an account cannot become an
// alias, and an alias that would lead back to itself, or through more than
// MaxAliasDepth aliases, is refused.
func (db *DB) AddAlias(addr string, targets []string) (Alias, error) {
	key, d, err := aliasKey(addr)
	if err != nil {
		return Alias{}, err
	}
	if len(targets) == 0 {
		return Alias{}, invalid("alias %s has no targets", key)
	}
	if len(targets) > MaxAliasTargets {
		return Alias{}, invalid("alias %s has more than %d targets", key, MaxAliasTargets)
	}
	rec := aliasRecord{Created: time.Now().UTC().Truncate(time.Second)}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		if !hasDomain(tx, d) {
			return fmt.Errorf("domain %s: %w", d, ErrNotFound)
		}
		if ub := tx.Bucket(bucketUsers).Bucket([]byte(d)); ub != nil && ub.Get([]byte(key)) != nil {
			return fmt.Errorf("%s is an account: %w", key, ErrExists)
		}
		b, err := tx.Bucket(bucketAliases).CreateBucketIfNotExists([]byte(d))
		if err != nil {
			return err
		}
		if b.Get([]byte(key)) != nil {
			return fmt.Errorf("alias %s: %w", key, ErrExists)
		}
		seen := map[string]bool{}
		for _, t := range targets {
			local, td, err := splitAddress(strings.TrimSpace(t))
			if err != nil {
				return fmt.Errorf("alias %s: target: %w", key, err)
			}
			td = strings.ToLower(td)
			if hasDomain(tx, td) {
				local = strings.ToLower(local)
			}
			t = local + "@" + td
			if !seen[t] {
				seen[t] = true
				rec.Targets = append(rec.Targets, t)
			}
		}
		if err := putJSON(b, key, rec); err != nil {
			return err
		}
		r := resolver{tx: tx, seen: map[string]bool{}}
		r.expandAlias(key, rec.Targets)
		if r.err != nil {
			return r.err
		}
		if r.problem != "" {
			return invalid("alias %s: %s", key, r.problem)
		}
		return nil
	})
	if err != nil {
		return Alias{}, err
	}
	return Alias{Address: key, Targets: rec.Targets, Created: rec.Created}, nil
}

// DelAlias deletes an alias or ("@domain") a catch-all.
func (db *DB) DelAlias(addr string) error {
	key, d, err := aliasKey(addr)
	if err != nil {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAliases).Bucket([]byte(d))
		if b == nil || b.Get([]byte(key)) == nil {
			return fmt.Errorf("alias %s: %w", key, ErrNotFound)
		}
		return b.Delete([]byte(key))
	})
}

// Alias returns one alias or ("@domain") catch-all.
func (db *DB) Alias(addr string) (Alias, error) {
	key, d, err := aliasKey(addr)
	if err != nil {
		return Alias{}, err
	}
	var a Alias
	err = db.bolt.View(func(tx *bolt.Tx) error {
		v := getAlias(tx, d, key)
		if v == nil {
			return fmt.Errorf("alias %s: %w", key, ErrNotFound)
		}
		a, err = decodeAlias(key, v)
		return err
	})
	return a, err
}

func decodeAlias(key string, v []byte) (Alias, error) {
	var rec aliasRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return Alias{}, fmt.Errorf("alias %s: damaged record: %w", key, err)
	}
	return Alias{Address: key, Targets: rec.Targets, Created: rec.Created}, nil
}

// Aliases lists the aliases and catch-alls of a domain, or of every domain when domain
// is "", sorted by domain and then address.
func (db *DB) Aliases(domain string) ([]Alias, error) {
	var out []Alias
	err := db.bolt.View(func(tx *bolt.Tx) error {
		names, err := domainNames(tx, domain)
		if err != nil {
			return err
		}
		for _, d := range names {
			b := tx.Bucket(bucketAliases).Bucket([]byte(d))
			if b == nil {
				continue
			}
			err := b.ForEach(func(k, v []byte) error {
				a, err := decodeAlias(string(k), v)
				out = append(out, a)
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// Resolution says where mail for an address goes.
type Resolution struct {
	// Local is true when the address's domain is one of ours.
	Local bool
	// Found is true when a local address leads somewhere: Targets is not empty.
	Found bool
	// Targets are the final destinations, without duplicates: account addresses in
	// canonical form, external addresses from aliases as stored, and local addresses an
	// alias names that no longer exist (so that mail to them bounces rather than
	// vanishes).
	Targets []string
}

// Resolve tells where mail for addr goes. Case does not matter. An address of one of our
// domains is looked up in this order:
//
//  1. an account with exactly that address;
//  2. an alias with exactly that address;
//  3. for local+tag@domain (plus-addressing), the account, then the alias, local@domain;
//  4. the domain's catch-all.
//
// Aliases expand recursively. A branch that loops back to an alias being expanded, or
// goes deeper than MaxAliasDepth, is dropped. A local part that is not a dot-atom
// matches nothing. Resolve fails only on an address without "@" or a damaged database.
func (db *DB) Resolve(addr string) (Resolution, error) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return Resolution{}, fmt.Errorf("address %q: %w", clip(addr), invalid("no @domain"))
	}
	local, domain := addr[:at], addr[at+1:]
	var res Resolution
	err := db.bolt.View(func(tx *bolt.Tx) error {
		d := strings.ToLower(domain)
		if checkDomain(domain) != nil || !hasDomain(tx, d) {
			return nil
		}
		res.Local = true
		if checkLocal(local) != nil {
			return nil
		}
		r := resolver{tx: tx, seen: map[string]bool{}}
		account, key, targets := r.match(strings.ToLower(local), d)
		switch {
		case account != "":
			r.add(account)
		case key != "":
			r.expandAlias(key, targets)
		}
		res.Targets = r.out
		res.Found = len(r.out) > 0
		return r.err
	})
	if err != nil {
		return Resolution{}, err
	}
	return res, nil
}

// resolver expands addresses inside one transaction.
type resolver struct {
	tx   *bolt.Tx
	seen map[string]bool
	out  []string
	// path holds the aliases being expanded, outermost first.
	path []string
	// problem describes the first loop or overly deep chain met.
	problem string
	// err is a damaged record.
	err error
}

func (r *resolver) add(t string) {
	if !r.seen[t] {
		r.seen[t] = true
		r.out = append(r.out, t)
	}
}

func (r *resolver) isUser(domain, addr string) bool {
	b := r.tx.Bucket(bucketUsers).Bucket([]byte(domain))
	return b != nil && b.Get([]byte(addr)) != nil
}

func (r *resolver) alias(domain, key string) ([]string, bool) {
	v := getAlias(r.tx, domain, key)
	if v == nil {
		return nil, false
	}
	a, err := decodeAlias(key, v)
	if err != nil {
		if r.err == nil {
			r.err = err
		}
		return nil, false
	}
	return a.Targets, true
}

// match finds what a canonical local@domain of one of our domains leads to: an account
// (account set) or an alias (key and targets set), or nothing.
func (r *resolver) match(local, domain string) (account, key string, targets []string) {
	candidates := []string{local + "@" + domain}
	// Plus-addressing: user+tag@domain falls back to user@domain.
	if i := strings.Index(local, PlusSeparator); i > 0 {
		candidates = append(candidates, local[:i]+"@"+domain)
	}
	for _, a := range candidates {
		if r.isUser(domain, a) {
			return a, "", nil
		}
		if t, ok := r.alias(domain, a); ok {
			return "", a, t
		}
	}
	if t, ok := r.alias(domain, "@"+domain); ok {
		return "", "@" + domain, t
	}
	return "", "", nil
}

// expand adds the destinations of a stored alias target.
func (r *resolver) expand(t string) {
	at := strings.LastIndexByte(t, '@')
	if at < 0 {
		return
	}
	local, domain := t[:at], strings.ToLower(t[at+1:])
	if !hasDomain(r.tx, domain) {
		r.add(local + "@" + domain)
		return
	}
	local = strings.ToLower(local)
	if checkLocal(local) != nil {
		return
	}
	account, key, targets := r.match(local, domain)
	switch {
	case account != "":
		r.add(account)
	case key != "":
		r.expandAlias(key, targets)
	default:
		r.add(local + "@" + domain)
	}
}

// expandAlias adds the destinations of the alias key.
func (r *resolver) expandAlias(key string, targets []string) {
	if slices.Contains(r.path, key) {
		if r.problem == "" {
			r.problem = "alias loop: " + strings.Join(append(r.path, key), " → ")
		}
		return
	}
	if len(r.path) >= MaxAliasDepth {
		if r.problem == "" {
			r.problem = fmt.Sprintf("more than %d aliases in a row: %s → %s", MaxAliasDepth, strings.Join(r.path, " → "), key)
		}
		return
	}
	r.path = append(r.path, key)
	for _, t := range targets {
		r.expand(t)
	}
	r.path = r.path[:len(r.path)-1]
}
