package smtp

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		in   string
		utf8 bool
		want Address
		err  error
	}{
		{"user@example.com", false, Address{"user", "example.com"}, nil},
		{"User.Name+tag@Example.COM", false, Address{"User.Name+tag", "example.com"}, nil},
		{"a@b", false, Address{"a", "b"}, nil},
		{"1@2.3", false, Address{"1", "2.3"}, nil},
		{"!#$%&'*+-/=?^_`{|}~@x.example", false, Address{"!#$%&'*+-/=?^_`{|}~", "x.example"}, nil},
		// Relay tricks parse as written; policy belongs to the server.
		{"user%foreign.test@example.test", false, Address{"user%foreign.test", "example.test"}, nil},
		{`"user@foreign.test"@example.test`, false, Address{"user@foreign.test", "example.test"}, nil},
		{"foreign.test!user@example.test", false, Address{"foreign.test!user", "example.test"}, nil},
		// Quoted local parts.
		{`"john doe"@example.com`, false, Address{"john doe", "example.com"}, nil},
		{`"a\"b\\c"@example.com`, false, Address{`a"b\c`, "example.com"}, nil},
		{`"\a"@example.com`, false, Address{"a", "example.com"}, nil},
		{`""@example.com`, false, Address{"", "example.com"}, nil},
		{`"a..b."@example.com`, false, Address{"a..b.", "example.com"}, nil},
		// Address literals.
		{"user@[192.0.2.1]", false, Address{"user", "[192.0.2.1]"}, nil},
		{"user@[IPv6:2001:DB8::1]", false, Address{"user", "[IPv6:2001:db8::1]"}, nil},
		{"user@[ipv6:2001:db8:0:0:0:0:0:1]", false, Address{"user", "[IPv6:2001:db8::1]"}, nil},
		{"user@[IPv6:::ffff:192.0.2.1]", false, Address{"user", "[IPv6:::ffff:192.0.2.1]"}, nil},
		// Internationalized addresses (RFC 6531).
		{"δοκιμή@παράδειγμα.δοκιμή", true, Address{"δοκιμή", "παράδειγμα.δοκιμή"}, nil},
		{"用户@例子.广告", true, Address{"用户", "例子.广告"}, nil},
		{"Δ@ΠΑΡΆΔΕΙΓΜΑ.ΔΟΚΙΜΉ", true, Address{"Δ", "παράδειγμα.δοκιμή"}, nil},
		{`"δ x"@example.com`, true, Address{"δ x", "example.com"}, nil},
		{"δοκιμή@παράδειγμα.δοκιμή", false, Address{}, ErrNonASCII},
		{"user@παράδειγμα.δοκιμή", false, Address{}, ErrNonASCII},
		{"δοκιμή@example.com", false, Address{}, ErrNonASCII},
		{`"δ"@example.com`, false, Address{}, ErrNonASCII},
		{"user@xn--bcher-kva.example", false, Address{"user", "xn--bcher-kva.example"}, nil},
		{"\xff@example.com", true, Address{}, ErrSyntax},
		{"a@b\xffc", true, Address{}, ErrSyntax},
		{"a@b\u3002c", true, Address{}, ErrSyntax}, // ideographic full stop
		{"a@b\u202ec", true, Address{}, ErrSyntax}, // right-to-left override
		{"a\u0085b@c", true, Address{}, ErrSyntax}, // C1 control
		// Syntax errors.
		{"", false, Address{}, ErrSyntax},
		{"user", false, Address{}, ErrSyntax},
		{"@example.com", false, Address{}, ErrSyntax},
		{"user@", false, Address{}, ErrSyntax},
		{"user@@example.com", false, Address{}, ErrSyntax},
		{"user@foreign.test@example.test", false, Address{}, ErrSyntax},
		{".user@example.com", false, Address{}, ErrSyntax},
		{"user.@example.com", false, Address{}, ErrSyntax},
		{"us..er@example.com", false, Address{}, ErrSyntax},
		{"user name@example.com", false, Address{}, ErrSyntax},
		{"us\x00er@example.com", false, Address{}, ErrSyntax},
		{`"a` + "\x01" + `"@example.com`, false, Address{}, ErrSyntax},
		{`"a\` + "\x01" + `"@example.com`, false, Address{}, ErrSyntax},
		{`"unterminated@example.com`, false, Address{}, ErrSyntax},
		{`"a"b@example.com`, false, Address{}, ErrSyntax},
		{`"a"."b"@example.com`, false, Address{}, ErrSyntax},
		{"user@-x.example", false, Address{}, ErrSyntax},
		{"user@x-.example", false, Address{}, ErrSyntax},
		{"user@x..example", false, Address{}, ErrSyntax},
		{"user@.example", false, Address{}, ErrSyntax},
		{"user@example.com.", false, Address{}, ErrSyntax},
		{"user@x_y.example", false, Address{}, ErrSyntax},
		{"user@exa mple.com", false, Address{}, ErrSyntax},
		{"user@[192.0.2]", false, Address{}, ErrSyntax},
		{"user@[192.0.2.256]", false, Address{}, ErrSyntax},
		{"user@[192.0.2.1", false, Address{}, ErrSyntax},
		{"user@[192.0.2.1]x", false, Address{}, ErrSyntax},
		{"user@[::1]", false, Address{}, ErrSyntax},
		{"user@[IPv6:192.0.2.1]", false, Address{}, ErrSyntax},
		{"user@[IPv6:fe80::1%eth0]", false, Address{}, ErrSyntax},
		{"user@[x-tag:stuff]", false, Address{}, ErrSyntax},
		{"user@[]", false, Address{}, ErrSyntax},
		// Limits of RFC 5321 §4.5.3.1.
		{long(64) + "@example.com", false, Address{long(64), "example.com"}, nil},
		{long(65) + "@example.com", false, Address{}, ErrPathTooLong},
		{`"` + long(63) + `"@example.com`, false, Address{}, ErrPathTooLong},
		{"a@" + long(63) + ".example", false, Address{"a", long(63) + ".example"}, nil},
		{"a@" + long(64) + ".example", false, Address{}, ErrPathTooLong},
		{"a@" + strings.Repeat(long(49)+".", 5) + long(5), false, Address{"a", strings.Repeat(long(49)+".", 5) + long(5)}, nil},
		{"a@" + strings.Repeat(long(49)+".", 5) + long(6), false, Address{}, ErrPathTooLong},
	}
	for _, tt := range tests {
		got, err := ParseAddress(tt.in, tt.utf8)
		if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("ParseAddress(%q, %v) error = %v, want %v", tt.in, tt.utf8, err, tt.err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseAddress(%q, %v) = %+v, want %+v", tt.in, tt.utf8, got, tt.want)
		}
	}
}

func TestAddressString(t *testing.T) {
	tests := []struct {
		a    Address
		want string
	}{
		{Address{}, ""},
		{Address{"user", "example.com"}, "user@example.com"},
		{Address{"postmaster", ""}, "postmaster"},
		{Address{"john doe", "example.com"}, `"john doe"@example.com`},
		{Address{`a"b\c`, "example.com"}, `"a\"b\\c"@example.com`},
		{Address{"user@foreign.test", "example.test"}, `"user@foreign.test"@example.test`},
		{Address{"user%foreign.test", "example.test"}, `user%foreign.test@example.test`},
		{Address{"", "example.com"}, `""@example.com`},
		{Address{".a", "example.com"}, `".a"@example.com`},
		{Address{"a..b", "example.com"}, `"a..b"@example.com`},
		{Address{"δοκιμή", "παράδειγμα.δοκιμή"}, "δοκιμή@παράδειγμα.δοκιμή"},
		{Address{"user", "[IPv6:2001:db8::1]"}, "user@[IPv6:2001:db8::1]"},
	}
	for _, tt := range tests {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.a, got, tt.want)
		}
		if tt.a.Domain == "" {
			continue
		}
		back, err := ParseAddress(tt.want, true)
		if err != nil || back != tt.a {
			t.Errorf("ParseAddress(%q) = %+v, %v; want %+v", tt.want, back, err, tt.a)
		}
	}
}

func TestAddressHelpers(t *testing.T) {
	if !(Address{}).IsZero() || (Address{Local: "postmaster"}).IsZero() || (Address{Domain: "x"}).IsZero() {
		t.Error("IsZero is wrong")
	}
	if !(Address{"a", "b.example"}).IsASCII() || (Address{"δ", "b.example"}).IsASCII() || (Address{"a", "δ.example"}).IsASCII() {
		t.Error("IsASCII is wrong")
	}
	for _, tt := range []struct {
		domain string
		ip     string
	}{
		{"[192.0.2.1]", "192.0.2.1"},
		{"[IPv6:2001:db8::1]", "2001:db8::1"},
		{"example.com", ""},
	} {
		ip, ok := Address{"a", tt.domain}.IP()
		if want := tt.ip != ""; ok != want || ok && ip != netip.MustParseAddr(tt.ip) {
			t.Errorf("IP of %q = %v, %v; want %q", tt.domain, ip, ok, tt.ip)
		}
	}
}

func TestParseMailFrom(t *testing.T) {
	tests := []struct {
		arg    string
		utf8   bool
		want   Address
		params Params
		err    error
	}{
		{"FROM:<user@example.com>", false, Address{"user", "example.com"}, nil, nil},
		{"from:<user@Example.com>", false, Address{"user", "example.com"}, nil, nil},
		{"FROM: <user@example.com>", false, Address{"user", "example.com"}, nil, nil},
		{"FROM:  <user@example.com>  ", false, Address{"user", "example.com"}, nil, nil},
		{"FROM:<>", false, Address{}, nil, nil},
		{"FROM:<> SIZE=100 BODY=8BITMIME", false, Address{},
			Params{{"SIZE", "100"}, {"BODY", "8BITMIME"}}, nil},
		{"FROM:<a@example.com> size=100  body=8bitmime RET=HDRS ENVID=QQ314159+2B", false,
			Address{"a", "example.com"},
			Params{{"SIZE", "100"}, {"BODY", "8bitmime"}, {"RET", "HDRS"}, {"ENVID", "QQ314159+2B"}}, nil},
		{`FROM:<"a>b c"@example.com> SIZE=1`, false, Address{"a>b c", "example.com"}, Params{{"SIZE", "1"}}, nil},
		{`FROM:<"a\">"@example.com>`, false, Address{`a">`, "example.com"}, nil, nil},
		// Source routes are dropped (RFC 5321 §4.1.1.3, Appendix C).
		{"FROM:<@a.example,@b.example:user@example.com>", false, Address{"user", "example.com"}, nil, nil},
		{"FROM:<@[192.0.2.1],@[IPv6:2001:db8::1]:user@example.com>", false, Address{"user", "example.com"}, nil, nil},
		{"FROM:<@a.example:>", false, Address{}, nil, ErrSyntax},
		{"FROM:<@a.example>", false, Address{}, nil, ErrSyntax},
		{"FROM:<@a.example;user@example.com>", false, Address{}, nil, ErrSyntax},
		{"FROM:<@a.example,user@example.com>", false, Address{}, nil, ErrSyntax},
		{"FROM:<@:user@example.com>", false, Address{}, nil, ErrSyntax},
		{"FROM:<@a_b:user@example.com>", false, Address{}, nil, ErrSyntax},
		// SMTPUTF8.
		{"FROM:<δοκιμή@παράδειγμα.δοκιμή> SMTPUTF8", true, Address{"δοκιμή", "παράδειγμα.δοκιμή"}, Params{{"SMTPUTF8", ""}}, nil},
		{"FROM:<δοκιμή@παράδειγμα.δοκιμή> smtputf8 BODY=8BITMIME", true, Address{"δοκιμή", "παράδειγμα.δοκιμή"}, Params{{"SMTPUTF8", ""}, {"BODY", "8BITMIME"}}, nil},
		{"FROM:<δοκιμή@παράδειγμα.δοκιμή>", true, Address{}, nil, ErrNonASCII},
		{"FROM:<δοκιμή@παράδειγμα.δοκιμή> SMTPUTF8", false, Address{}, nil, ErrNonASCII},
		{"FROM:<δοκιμή@παράδειγμα.δοκιμή> SMTPUTF8=yes", true, Address{}, nil, ErrNonASCII},
		{"FROM:<a@example.com> ENVID=δ", false, Address{}, nil, ErrParam},
		{"FROM:<a@example.com> SMTPUTF8 ENVID=δ", true, Address{"a", "example.com"}, Params{{"SMTPUTF8", ""}, {"ENVID", "δ"}}, nil},
		// Syntax errors.
		{"FROM:user@example.com", false, Address{}, nil, ErrSyntax},
		{"FROM:<user@example.com", false, Address{}, nil, ErrSyntax},
		{"FROM:<user@example.com>SIZE=1", false, Address{}, nil, ErrSyntax},
		{"FROM <user@example.com>", false, Address{}, nil, ErrSyntax},
		{"TO:<user@example.com>", false, Address{}, nil, ErrSyntax},
		{"FROM:< user@example.com>", false, Address{}, nil, ErrSyntax},
		{"FROM:<user@example.com >", false, Address{}, nil, ErrSyntax},
		{"FROM:<postmaster>", false, Address{}, nil, ErrSyntax},
		{"FROM:", false, Address{}, nil, ErrSyntax},
		{"", false, Address{}, nil, ErrSyntax},
		// Parameters.
		{"FROM:<a@example.com> SIZE=1 SIZE=2", false, Address{}, nil, ErrParam},
		{"FROM:<a@example.com> SIZE=1 size=2", false, Address{}, nil, ErrParam},
		{"FROM:<a@example.com> =x", false, Address{}, nil, ErrParam},
		{"FROM:<a@example.com> -X=1", false, Address{}, nil, ErrParam},
		{"FROM:<a@example.com> X_Y=1", false, Address{}, nil, ErrParam},
		{"FROM:<a@example.com> X=", false, Address{}, nil, ErrParam},
		{"FROM:<a@example.com> X=a=b", false, Address{}, nil, ErrParam},
		{"FROM:<a@example.com> X=a\tb", false, Address{}, nil, ErrParam},
		// Limits.
		{"FROM:<@" + strings.Repeat("a.", 120) + "example:user@example.com>", false, Address{}, nil, ErrPathTooLong},
	}
	for _, tt := range tests {
		got, params, err := ParseMailFrom(tt.arg, tt.utf8)
		if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("ParseMailFrom(%q, %v) error = %v, want %v", tt.arg, tt.utf8, err, tt.err)
			continue
		}
		if got != tt.want || !reflect.DeepEqual(params, tt.params) {
			t.Errorf("ParseMailFrom(%q, %v) = %+v, %v; want %+v, %v", tt.arg, tt.utf8, got, params, tt.want, tt.params)
		}
	}
}

func TestParseRcptTo(t *testing.T) {
	tests := []struct {
		arg    string
		utf8   bool
		want   Address
		params Params
		err    error
	}{
		{"TO:<user@example.com>", false, Address{"user", "example.com"}, nil, nil},
		{"to: <user@EXAMPLE.com>", false, Address{"user", "example.com"}, nil, nil},
		{"TO:<postmaster>", false, Address{"postmaster", ""}, nil, nil},
		{"TO:<PostMaster>", false, Address{"postmaster", ""}, nil, nil},
		{"TO:<Postmaster@Example.com>", false, Address{"Postmaster", "example.com"}, nil, nil},
		{"TO:<@a.example:postmaster>", false, Address{}, nil, ErrSyntax},
		{"TO:<postmistress>", false, Address{}, nil, ErrSyntax},
		{"TO:<postmaſter>", true, Address{}, nil, ErrSyntax}, // no Unicode case folding
		{"TO:<postmaſter>", false, Address{}, nil, ErrNonASCII},
		{"TO:<>", false, Address{}, nil, ErrSyntax},
		{"TO:<@a.example,@b.example:user@example.com>", false, Address{"user", "example.com"}, nil, nil},
		{"TO:<user%foreign.test@example.test>", false, Address{"user%foreign.test", "example.test"}, nil, nil},
		{`TO:<"user@foreign.test"@example.test>`, false, Address{"user@foreign.test", "example.test"}, nil, nil},
		{"TO:<user@foreign.test@example.test>", false, Address{}, nil, ErrSyntax},
		{"TO:<a@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40example.com", false, Address{"a", "example.com"},
			Params{{"NOTIFY", "SUCCESS,FAILURE"}, {"ORCPT", "rfc822;a+40example.com"}}, nil},
		{"TO:<δοκιμή@παράδειγμα.δοκιμή>", true, Address{"δοκιμή", "παράδειγμα.δοκιμή"}, nil, nil},
		{"TO:<δοκιμή@παράδειγμα.δοκιμή>", false, Address{}, nil, ErrNonASCII},
		{"TO:user@example.com", false, Address{}, nil, ErrSyntax},
		{"FROM:<user@example.com>", false, Address{}, nil, ErrSyntax},
		{"TO:<a@example.com> X=", false, Address{}, nil, ErrParam},
	}
	for _, tt := range tests {
		got, params, err := ParseRcptTo(tt.arg, tt.utf8)
		if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("ParseRcptTo(%q, %v) error = %v, want %v", tt.arg, tt.utf8, err, tt.err)
			continue
		}
		if got != tt.want || !reflect.DeepEqual(params, tt.params) {
			t.Errorf("ParseRcptTo(%q, %v) = %+v, %v; want %+v, %v", tt.arg, tt.utf8, got, params, tt.want, tt.params)
		}
	}
}
