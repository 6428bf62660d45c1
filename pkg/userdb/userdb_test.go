package userdb

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// cheap keeps the tests fast; real databases use DefaultHashParams.
var cheap = HashParams{Memory: 64, Time: 1, Threads: 1}

func openTest(t *testing.T) *DB {
	t.Helper()
	db, err := OpenWith(filepath.Join(t.TempDir(), "users.db"), Options{Hash: cheap})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// must stops a test (by panicking, which fails it with a trace) when a setup step
// fails.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestOpenInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	db, err := OpenWith(path, Options{Hash: cheap})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = OpenWith(path, Options{Hash: cheap, Timeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second open: err = %v; want ErrInUse", err)
	}
	if !strings.Contains(err.Error(), "is authd running?") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not explain itself", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second open took %v", d)
	}
	must(db.AddDomain("example.org"))
	db.Close()
	// Released on Close, and the data stays.
	db, err = OpenWith(path, Options{Hash: cheap})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if ok, _ := db.HasDomain("example.org"); !ok {
		t.Error("domain lost on reopen")
	}
}

func TestBadHashParams(t *testing.T) {
	_, err := OpenWith(filepath.Join(t.TempDir(), "users.db"), Options{Hash: HashParams{Memory: 1, Time: 1, Threads: 1}})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("err = %v; want ErrInvalid", err)
	}
}

func TestDomains(t *testing.T) {
	db := openTest(t)
	d := must(db.AddDomain("Example.ORG"))
	if d.Name != "example.org" || d.Created.IsZero() {
		t.Errorf("AddDomain = %+v", d)
	}
	must(db.AddDomain("b.example"))
	if _, err := db.AddDomain("EXAMPLE.org"); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate domain: err = %v", err)
	}
	if _, err := db.AddDomain("bad domain"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad domain: err = %v", err)
	}
	for name, want := range map[string]bool{"example.org": true, "EXAMPLE.ORG": true, "c.example": false, "bad name": false} {
		if got, err := db.HasDomain(name); got != want || err != nil {
			t.Errorf("HasDomain(%q) = %v, %v", name, got, err)
		}
	}
	must(db.AddUser("a@example.org", "pw", 0))
	must(db.AddUser("b@example.org", "pw", 0))
	must(db.AddAlias("c@example.org", []string{"a@example.org"}))
	must(db.AddAlias("@example.org", []string{"a@example.org"}))
	ds := must(db.Domains())
	if len(ds) != 2 || ds[0].Name != "b.example" || ds[1].Name != "example.org" || ds[1].Users != 2 || ds[1].Aliases != 2 || ds[0].Users != 0 {
		t.Errorf("Domains = %+v", ds)
	}

	if err := db.DelDomain("nope.example", false); !errors.Is(err, ErrNotFound) {
		t.Errorf("DelDomain(unknown) = %v", err)
	}
	err := db.DelDomain("example.org", false)
	if !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "2 accounts and 2 aliases") {
		t.Errorf("DelDomain(not empty) = %v", err)
	}
	if _, err := db.User("a@example.org"); err != nil {
		t.Errorf("refused DelDomain removed an account: %v", err)
	}
	if err := db.DelDomain("b.example", false); err != nil {
		t.Errorf("DelDomain(empty) = %v", err)
	}
	if err := db.DelDomain("EXAMPLE.ORG", true); err != nil {
		t.Errorf("DelDomain(force) = %v", err)
	}
	if ds := must(db.Domains()); len(ds) != 0 {
		t.Errorf("Domains after deletion = %+v", ds)
	}
	// Re-creating the domain does not bring back its old accounts.
	must(db.AddDomain("example.org"))
	if us := must(db.Users("example.org")); len(us) != 0 {
		t.Errorf("accounts survived a forced DelDomain: %+v", us)
	}
	if as := must(db.Aliases("example.org")); len(as) != 0 {
		t.Errorf("aliases survived a forced DelDomain: %+v", as)
	}
}

func TestUsers(t *testing.T) {
	db := openTest(t)
	if _, err := db.AddUser("a@example.org", "pw", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddUser without domain: err = %v", err)
	}
	must(db.AddDomain("example.org"))
	must(db.AddDomain("a.example"))
	u := must(db.AddUser("Alice@Example.org", "secret", 1<<20))
	if u.Address != "alice@example.org" || u.Quota != 1<<20 || u.Created.IsZero() {
		t.Errorf("AddUser = %+v", u)
	}
	if _, err := db.AddUser("ALICE@example.org", "x", 0); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate account: err = %v", err)
	}
	must(db.AddUser("bob@example.org", "pw", 0))
	must(db.AddUser("zed@a.example", "pw", 0))
	for _, addr := range []string{"a/b@example.org", "..@example.org", ".a@example.org", "a b@example.org", "a\x00@example.org", "noat"} {
		if _, err := db.AddUser(addr, "pw", 0); !errors.Is(err, ErrInvalid) {
			t.Errorf("AddUser(%q): err = %v; want ErrInvalid", addr, err)
		}
	}
	for _, pw := range []string{"", strings.Repeat("x", MaxPasswordLen+1), "a\x00b"} {
		if _, err := db.AddUser("carol@example.org", pw, 0); !errors.Is(err, ErrInvalid) {
			t.Errorf("AddUser with password of %d bytes: err = %v; want ErrInvalid", len(pw), err)
		}
	}
	must(db.AddUser("long@example.org", strings.Repeat("x", MaxPasswordLen), 0))
	if _, err := db.AddUser("carol@example.org", "pw", -1); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative quota: err = %v", err)
	}

	got := must(db.User("ALICE@EXAMPLE.ORG"))
	if got.Address != "alice@example.org" || got.Quota != 1<<20 || !got.Created.Equal(u.Created) {
		t.Errorf("User = %+v; want %+v", got, u)
	}
	if _, err := db.User("nobody@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("User(unknown): err = %v", err)
	}
	if _, err := db.User("alice+tag@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("User does plus-addressing: err = %v", err)
	}

	var names []string
	for _, u := range must(db.Users("")) {
		names = append(names, u.Address)
	}
	if want := []string{"zed@a.example", "alice@example.org", "bob@example.org", "long@example.org"}; !reflect.DeepEqual(names, want) {
		t.Errorf("Users(\"\") = %v; want %v", names, want)
	}
	if us := must(db.Users("A.EXAMPLE")); len(us) != 1 || us[0].Address != "zed@a.example" {
		t.Errorf("Users(a.example) = %+v", us)
	}
	if _, err := db.Users("nope.example"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Users(unknown domain): err = %v", err)
	}

	if err := db.SetQuota("alice@example.org", 5); err != nil {
		t.Fatal(err)
	}
	if got := must(db.User("alice@example.org")); got.Quota != 5 {
		t.Errorf("quota after SetQuota = %d", got.Quota)
	}
	if err := db.SetPassword("Alice@example.org", "new secret"); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := db.VerifyPassword("alice@example.org", "secret"); ok {
		t.Error("old password still works")
	}
	if ok, _, _ := db.VerifyPassword("alice@example.org", "new secret"); !ok {
		t.Error("new password does not work")
	}
	if err := db.SetPassword("nobody@example.org", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetPassword(unknown): err = %v", err)
	}
	if err := db.SetPassword("alice@example.org", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetPassword(empty): err = %v", err)
	}

	if err := db.DelUser("BOB@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := db.DelUser("bob@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DelUser twice: err = %v", err)
	}
	if _, err := db.User("bob@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted account still there: %v", err)
	}
}

func TestVerifyPassword(t *testing.T) {
	db := openTest(t)
	must(db.AddDomain("example.org"))
	must(db.AddUser("alice@example.org", "correct horse", 0))
	cases := []struct {
		user, pw string
		ok       bool
	}{
		{"alice@example.org", "correct horse", true},
		{"ALICE@Example.Org", "correct horse", true},
		{"alice@example.org", "Correct horse", false},
		{"alice@example.org", "correct horse ", false},
		{"alice@example.org", "", false},
		{"alice+tag@example.org", "correct horse", false},
		{"bob@example.org", "correct horse", false},
		{"alice@other.example", "correct horse", false},
		{"alice", "correct horse", false},
		{"alice@example.org", strings.Repeat("x", 5000), false},
	}
	for _, c := range cases {
		ok, canon, err := db.VerifyPassword(c.user, c.pw)
		if err != nil || ok != c.ok {
			t.Errorf("VerifyPassword(%q, %d bytes) = %v, %v", c.user, len(c.pw), ok, err)
		}
		if ok && canon != "alice@example.org" || !ok && canon != "" {
			t.Errorf("VerifyPassword(%q) canonical = %q", c.user, canon)
		}
	}
}

// TestVerifyTiming checks that a login for an account that does not exist costs a hash
// too. Measurements alternate and the fastest of each kind is compared, which a busy
// machine can only slow down: without the dummy hash an unknown account would answer
// in microseconds, a thousand times faster.
// TestVerifyTiming checks that refusing an unknown account, a foreign domain or a
// malformed address costs the same argon2 work as refusing a wrong password, so the
// time taken does not reveal which accounts exist. It measures the work by the memory
// argon2 allocates (its m parameter, 1 MiB here), not by the clock: allocation is
// deterministic where time on a loaded machine is not.
func TestVerifyTiming(t *testing.T) {
	db, err := OpenWith(filepath.Join(t.TempDir(), "users.db"), Options{Hash: HashParams{Memory: 1024, Time: 2, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	must(db.AddDomain("example.org"))
	must(db.AddUser("alice@example.org", "pw", 0))
	users := []string{"alice@example.org", "bob@example.org", "bob@other.example", "not an address"}
	allocated := make([]uint64, len(users))
	var before, after runtime.MemStats
	for i, user := range users {
		runtime.ReadMemStats(&before)
		if ok, _, err := db.VerifyPassword(user, "wrong"); ok || err != nil {
			t.Fatalf("VerifyPassword(%s) = %v, %v", user, ok, err)
		}
		runtime.ReadMemStats(&after)
		allocated[i] = after.TotalAlloc - before.TotalAlloc
	}
	if allocated[0] < 1<<20 {
		t.Fatalf("verifying an existing account allocated %d bytes, less than argon2's 1 MiB: the measure is wrong", allocated[0])
	}
	for i, user := range users[1:] {
		if allocated[i+1] < allocated[0]/2 {
			t.Errorf("verifying %q allocated %d bytes, an existing account %d: it skipped the hash, and the time saved reveals accounts", user, allocated[i+1], allocated[0])
		}
	}
}

func TestHashFormat(t *testing.T) {
	h, err := hashPassword("pw", HashParams{Memory: 128, Time: 3, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=128,t=3,p=2\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !re.MatchString(h) {
		t.Errorf("hash %q is not in PHC format", h)
	}
	p, err := parseHash(h)
	if err != nil || p.params != (HashParams{Memory: 128, Time: 3, Threads: 2}) || len(p.salt) != saltLen || len(p.key) != keyLen {
		t.Errorf("parseHash = %+v, %v", p, err)
	}
	if ok, err := checkHash(h, "pw"); !ok || err != nil {
		t.Errorf("checkHash(right) = %v, %v", ok, err)
	}
	if ok, err := checkHash(h, "pW"); ok || err != nil {
		t.Errorf("checkHash(wrong) = %v, %v", ok, err)
	}
	// Two hashes of one password differ by their salt.
	if h2, _ := hashPassword("pw", HashParams{Memory: 128, Time: 3, Threads: 2}); h2 == h {
		t.Error("salt is not random")
	}
	// A hash made by another implementation (libargon2, the reference one, which Dovecot
	// also uses) verifies, so hashes move between Postern and Dovecot.
	ref := "$argon2id$v=19$m=256,t=3,p=2$cG9zdGVybi1zYWx0LTE2Yg$mBJZvVE+8nZwWkNHIlvjFU4vOYPf6jVypTQeiLZx0lg"
	if ok, err := checkHash(ref, "correct horse battery staple"); !ok || err != nil {
		t.Errorf("checkHash(libargon2 hash) = %v, %v", ok, err)
	}
	bad := []string{
		"", "x", "$argon2i$v=19$m=64,t=1,p=1$c29tZXNhbHQ$" + strings.Repeat("A", 43),
		"$argon2id$v=16$m=64,t=1,p=1$c29tZXNhbHQ$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=64,t=1$c29tZXNhbHQ$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=64,t=1,p=1,p=1$c29tZXNhbHQ$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=99999999999,t=1,p=1$c29tZXNhbHQ$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=64,t=0,p=1$c29tZXNhbHQ$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=64,t=1,p=0$c29tZXNhbHQ$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=64,t=1,p=300$c29tZXNhbHQ$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=064,t=1,p=1$c29tZXNhbHQ$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$AAAA",
		"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ=$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$" + strings.Repeat("A", 43) + "$",
	}
	for _, s := range bad {
		if _, err := parseHash(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("parseHash(%q) err = %v; want ErrInvalid", s, err)
		}
	}
}

func TestDefaultHashParams(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB hash")
	}
	h, err := hashPassword("pw", DefaultHashParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=1,p=2$") {
		t.Errorf("hash %q", h)
	}
	if ok, err := checkHash(h, "pw"); !ok || err != nil {
		t.Errorf("checkHash = %v, %v", ok, err)
	}
}

func TestAliases(t *testing.T) {
	db := openTest(t)
	if _, err := db.AddAlias("x@example.org", []string{"a@b.c"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("alias without domain: err = %v", err)
	}
	must(db.AddDomain("example.org"))
	must(db.AddDomain("b.example"))
	must(db.AddUser("alice@example.org", "pw", 0))
	a := must(db.AddAlias("Sales@Example.org", []string{"ALICE@example.org", "Bob.Smith@Gmail.COM", "alice@EXAMPLE.org", " bob.smith@gmail.com "}))
	if a.Address != "sales@example.org" || !reflect.DeepEqual(a.Targets, []string{"alice@example.org", "Bob.Smith@gmail.com", "bob.smith@gmail.com"}) {
		t.Errorf("AddAlias = %+v", a)
	}
	if _, err := db.AddAlias("SALES@example.org", []string{"x@y.z"}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate alias: err = %v", err)
	}
	if _, err := db.AddAlias("alice@example.org", []string{"x@y.z"}); !errors.Is(err, ErrExists) {
		t.Errorf("alias over an account: err = %v", err)
	}
	if _, err := db.AddUser("sales@example.org", "pw", 0); !errors.Is(err, ErrExists) {
		t.Errorf("account over an alias: err = %v", err)
	}
	for _, targets := range [][]string{nil, {}, {"not an address"}, {"a@b.c", "@example.org"}, make([]string, MaxAliasTargets+1)} {
		if _, err := db.AddAlias("new@example.org", targets); !errors.Is(err, ErrInvalid) {
			t.Errorf("AddAlias(%d targets) err = %v; want ErrInvalid", len(targets), err)
		}
	}
	if _, err := db.AddAlias("bad alias@example.org", []string{"a@b.c"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad alias address: err = %v", err)
	}
	must(db.AddAlias("@EXAMPLE.ORG", []string{"alice@example.org"}))
	must(db.AddAlias("info@b.example", []string{"sales@example.org"}))

	var got []string
	for _, a := range must(db.Aliases("")) {
		got = append(got, a.Address)
	}
	if want := []string{"info@b.example", "@example.org", "sales@example.org"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Aliases(\"\") = %v; want %v", got, want)
	}
	if as := must(db.Aliases("b.example")); len(as) != 1 || as[0].Address != "info@b.example" || as[0].Created.IsZero() {
		t.Errorf("Aliases(b.example) = %+v", as)
	}
	if a := must(db.Alias("@example.org")); !IsCatchAll(a.Address) || a.Targets[0] != "alice@example.org" {
		t.Errorf("Alias(catch-all) = %+v", a)
	}
	if err := db.DelAlias("@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := db.DelAlias("Sales@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := db.DelAlias("sales@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DelAlias twice: err = %v", err)
	}
	if _, err := db.Alias("sales@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted alias still there: %v", err)
	}
}

func TestAliasLoopsRefused(t *testing.T) {
	db := openTest(t)
	must(db.AddDomain("example.org"))
	must(db.AddAlias("a@example.org", []string{"b@example.org"}))
	_, err := db.AddAlias("b@example.org", []string{"a@example.org"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "loop") {
		t.Errorf("loop: err = %v", err)
	}
	if _, err := db.Alias("b@example.org"); !errors.Is(err, ErrNotFound) {
		t.Error("a refused alias was stored")
	}
	if _, err := db.AddAlias("self@example.org", []string{"Self@example.org"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("self loop: err = %v", err)
	}
	// A catch-all to a missing address of its own domain would loop on itself.
	if _, err := db.AddAlias("@example.org", []string{"nobody@example.org"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("catch-all loop: err = %v", err)
	}
	// A chain of MaxAliasDepth aliases is fine; one more is not.
	for i := range MaxAliasDepth {
		must(db.AddAlias(chain(i), []string{chain(i + 1)}))
	}
	must(db.AddUser(chain(MaxAliasDepth), "pw", 0))
	if r := must(db.Resolve(chain(0))); !reflect.DeepEqual(r.Targets, []string{chain(MaxAliasDepth)}) {
		t.Errorf("Resolve(chain of %d) = %+v", MaxAliasDepth, r)
	}
	if _, err := db.AddAlias("head@example.org", []string{chain(0)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("chain of %d aliases: err = %v", MaxAliasDepth+1, err)
	}
}

func chain(i int) string { return "c" + string(rune('a'+i)) + "@example.org" }

func TestResolve(t *testing.T) {
	db := openTest(t)
	must(db.AddDomain("example.org"))
	must(db.AddDomain("b.example"))
	for _, u := range []string{"alice@example.org", "bob@example.org", "bob+special@example.org", "carol@b.example"} {
		must(db.AddUser(u, "pw", 0))
	}
	must(db.AddAlias("sales@example.org", []string{"alice@example.org", "team@example.org"}))
	must(db.AddAlias("team@example.org", []string{"bob@example.org", "Alice@example.org", "Partner@External.example"}))
	must(db.AddAlias("fwd@example.org", []string{"x.Y@Gmail.com"}))
	must(db.AddAlias("carol+list@b.example", []string{"alice@example.org"}))
	must(db.AddAlias("cross@example.org", []string{"CAROL+stuff@b.example", "info@b.example"}))
	must(db.AddAlias("gone@example.org", []string{"deleted@example.org"}))
	must(db.AddAlias("@b.example", []string{"carol@b.example"}))

	cases := []struct {
		addr         string
		local, found bool
		targets      []string
	}{
		{"alice@example.org", true, true, []string{"alice@example.org"}},
		{"ALICE@EXAMPLE.ORG", true, true, []string{"alice@example.org"}},
		{"alice+news@example.org", true, true, []string{"alice@example.org"}},
		{"Alice+News+More@Example.org", true, true, []string{"alice@example.org"}},
		{"bob+special@example.org", true, true, []string{"bob+special@example.org"}},
		{"bob+other@example.org", true, true, []string{"bob@example.org"}},
		{"+alice@example.org", true, false, nil},
		{"nobody@example.org", true, false, nil},
		{"nobody+alice@example.org", true, false, nil},
		{"sales@example.org", true, true, []string{"alice@example.org", "bob@example.org", "Partner@external.example"}},
		{"sales+x@example.org", true, true, []string{"alice@example.org", "bob@example.org", "Partner@external.example"}},
		{"fwd@example.org", true, true, []string{"x.Y@gmail.com"}},
		{"gone@example.org", true, true, []string{"deleted@example.org"}},
		{"carol+list@b.example", true, true, []string{"alice@example.org"}},
		{"carol+other@b.example", true, true, []string{"carol@b.example"}},
		{"anything@b.example", true, true, []string{"carol@b.example"}},
		{"any+thing@B.EXAMPLE", true, true, []string{"carol@b.example"}},
		{"cross@example.org", true, true, []string{"carol@b.example"}},
		{"\"quoted\"@b.example", true, false, nil},
		{"a..b@b.example", true, false, nil},
		{"alice@other.example", false, false, nil},
		{"alice@[127.0.0.1]", false, false, nil},
		{"alice@", false, false, nil},
		{"@example.org", true, false, nil},
	}
	for _, c := range cases {
		r, err := db.Resolve(c.addr)
		if err != nil {
			t.Errorf("Resolve(%q): %v", c.addr, err)
			continue
		}
		want := Resolution{Local: c.local, Found: c.found, Targets: c.targets}
		if !reflect.DeepEqual(r, want) {
			t.Errorf("Resolve(%q) = %+v; want %+v", c.addr, r, want)
		}
	}
	for _, addr := range []string{"", "alice", "example.org"} {
		if _, err := db.Resolve(addr); !errors.Is(err, ErrInvalid) {
			t.Errorf("Resolve(%q) err = %v; want ErrInvalid", addr, err)
		}
	}
}

// TestResolveLoopAtRuntime covers loops that AddAlias could not see coming: a deleted
// account turns a catch-all into a loop. Resolve drops the looping branch and keeps the
// rest.
func TestResolveLoopAtRuntime(t *testing.T) {
	db := openTest(t)
	must(db.AddDomain("example.org"))
	must(db.AddUser("admin@example.org", "pw", 0))
	must(db.AddAlias("@example.org", []string{"admin@example.org"}))
	must(db.AddAlias("list@example.org", []string{"admin@example.org", "x@external.example"}))
	if err := db.DelUser("admin@example.org"); err != nil {
		t.Fatal(err)
	}
	r := must(db.Resolve("someone@example.org"))
	if r.Found || len(r.Targets) != 0 || !r.Local {
		t.Errorf("Resolve(catch-all loop) = %+v", r)
	}
	r = must(db.Resolve("list@example.org"))
	if !r.Found || !reflect.DeepEqual(r.Targets, []string{"x@external.example"}) {
		t.Errorf("Resolve(list with a looping member) = %+v", r)
	}
}

func TestConcurrentUse(t *testing.T) {
	db := openTest(t)
	must(db.AddDomain("example.org"))
	errs := make(chan error, 20)
	for i := range 20 {
		go func() {
			addr := "u" + string(rune('a'+i)) + "@example.org"
			if _, err := db.AddUser(addr, "pw", 0); err != nil {
				errs <- err
				return
			}
			ok, _, err := db.VerifyPassword(addr, "pw")
			if err == nil && !ok {
				err = errors.New("password rejected")
			}
			errs <- err
		}()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	us := must(db.Users("example.org"))
	if len(us) != 20 || !sort.SliceIsSorted(us, func(i, j int) bool { return us[i].Address < us[j].Address }) {
		t.Errorf("Users = %d, sorted %v", len(us), us)
	}
}

// Backup copies the database while it is open; the copy opens and holds the accounts.
func TestBackup(t *testing.T) {
	db := openTest(t)
	must(db.AddDomain("example.test"))
	must(db.AddUser("ann@example.test", "a fine password", 0))
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	f, err := os.Create(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := db.Backup(f); err != nil || n == 0 {
		t.Fatalf("backup: %d, %v", n, err)
	}
	f.Close()
	// The original stays usable.
	must(db.AddUser("bob@example.test", "another password", 0))
	cp, err := OpenWith(copyPath, Options{Hash: cheap})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if _, err := cp.User("ann@example.test"); err != nil {
		t.Errorf("the copy lacks ann: %v", err)
	}
	if _, err := cp.User("bob@example.test"); err == nil {
		t.Error("the copy has bob, added after it was taken")
	}
}
