package smtp

import (
	"bufio"
	"errors"
	"io"
	"net/textproto"
	"reflect"
	"strings"
	"testing"
)

func TestReplyString(t *testing.T) {
	tests := []struct {
		r    Reply
		want string
	}{
		{NewReply(250, "2.0.0", "OK"), "250 2.0.0 OK\r\n"},
		{NewReply(250, "", "OK"), "250 OK\r\n"},
		{NewReply(550, "5.1.1", "<%s>: no such user", "a@example.com"), "550 5.1.1 <a@example.com>: no such user\r\n"},
		{NewReply(250, "", "mail.example.com\nPIPELINING\nSIZE 10240000"),
			"250-mail.example.com\r\n250-PIPELINING\r\n250 SIZE 10240000\r\n"},
		{NewReply(451, "4.3.0", "one\r\ntwo"), "451-4.3.0 one\r\n451 4.3.0 two\r\n"},
		{NewReply(221, "2.0.0", ""), "221 2.0.0\r\n"},
		{Reply{Code: 354}, "354 \r\n"},
		{Reply{Code: 354, Lines: []string{"End data with <CR><LF>.<CR><LF>"}}, "354 End data with <CR><LF>.<CR><LF>\r\n"},
		{Reply{Code: 250, Lines: []string{"a", "", "b"}}, "250-a\r\n250-\r\n250 b\r\n"},
		// No text can inject a line or a control character.
		{Reply{Code: 550, Lines: []string{"x\r\n250 fake"}}, "550-x\r\n550 250 fake\r\n"},
		{Reply{Code: 550, Lines: []string{"x\rfake"}}, "550-x\r\n550 fake\r\n"},
		{Reply{Code: 550, Lines: []string{"a\x00b\x1bc\td"}}, "550 a?b?c\td\r\n"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.r, got, tt.want)
		}
	}
}

func TestReplyStringReadByTextproto(t *testing.T) {
	// Go's net/smtp reads replies with net/textproto; it must accept ours.
	for _, r := range []Reply{{Code: 354}, NewReply(250, "", "a\nb"), NewReply(221, "2.0.0", "")} {
		tr := textproto.NewReader(bufio.NewReader(strings.NewReader(r.String())))
		code, _, err := tr.ReadResponse(r.Code)
		if err != nil || code != r.Code {
			t.Errorf("textproto reading %q: %d, %v", r.String(), code, err)
		}
	}
}

func TestReadReply(t *testing.T) {
	tests := []struct {
		in   string
		want Reply
		err  error
	}{
		{"250 OK\r\n", Reply{250, "", []string{"OK"}}, nil},
		{"250 OK\n", Reply{250, "", []string{"OK"}}, nil},
		{"250\r\n", Reply{250, "", []string{""}}, nil},
		{"250 \r\n", Reply{250, "", []string{""}}, nil},
		{"250-mail.example.com Hello\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
			Reply{250, "", []string{"mail.example.com Hello", "PIPELINING", "8BITMIME"}}, nil},
		{"550 5.1.1 No such user\r\n", Reply{550, "5.1.1", []string{"No such user"}}, nil},
		{"550-5.1.1 a\r\n550-5.1.1\r\n550 5.1.1 b\r\n", Reply{550, "5.1.1", []string{"a", "", "b"}}, nil},
		{"550-5.1.1 a\r\n550 5.7.1 b\r\n", Reply{550, "5.1.1", []string{"a", "5.7.1 b"}}, nil},
		{"550-a\r\n550 5.1.1 b\r\n", Reply{550, "", []string{"a", "5.1.1 b"}}, nil},
		{"250 2.0.0\r\n", Reply{250, "2.0.0", []string{""}}, nil},
		{"421 4.4.2 timeout\r\n", Reply{421, "4.4.2", []string{"timeout"}}, nil},
		{"250 4.0.0 class mismatch\r\n", Reply{250, "", []string{"4.0.0 class mismatch"}}, nil},
		{"250 2.0 x\r\n", Reply{250, "", []string{"2.0 x"}}, nil},
		{"250 2.0.1000 x\r\n", Reply{250, "", []string{"2.0.1000 x"}}, nil},
		{"250 2.0.0.0 x\r\n", Reply{250, "", []string{"2.0.0.0 x"}}, nil},
		{"250 a\x00b\rc\r\n", Reply{250, "", []string{"a?b?c"}}, nil},
		{"250-a\r\n251 b\r\n", Reply{}, ErrSyntax},
		{"25 x\r\n", Reply{}, ErrSyntax},
		{"600 x\r\n", Reply{}, ErrSyntax},
		{"260 x\r\n", Reply{}, ErrSyntax},
		{"250x\r\n", Reply{}, ErrSyntax},
		{"\r\n", Reply{}, ErrSyntax},
		{"", Reply{}, io.EOF},
		{"250-a\r\n", Reply{}, io.ErrUnexpectedEOF},
		{"250 a", Reply{}, io.ErrUnexpectedEOF},
		{"250 " + strings.Repeat("x", 3000) + "\r\n", Reply{}, ErrLineTooLong},
		{strings.Repeat("250-x\r\n", 300) + "250 x\r\n", Reply{}, ErrSyntax},
	}
	for _, tt := range tests {
		got, err := ReadReply(bufio.NewReader(strings.NewReader(tt.in)))
		if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("ReadReply(%q) error = %v, want %v", tt.in, err, tt.err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ReadReply(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestReadReplyPipelined(t *testing.T) {
	replies := []Reply{
		NewReply(250, "2.1.0", "Ok"),
		NewReply(250, "2.1.5", "Ok"),
		NewReply(550, "5.1.1", "no such user\nsee the docs"),
		NewReply(354, "", "End data with <CR><LF>.<CR><LF>"),
	}
	var in strings.Builder
	for _, r := range replies {
		in.WriteString(r.String())
	}
	br := bufio.NewReader(strings.NewReader(in.String()))
	for _, want := range replies {
		got, err := ReadReply(br)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ReadReply = %#v, %v; want %#v", got, err, want)
		}
	}
	if _, err := ReadReply(br); err != io.EOF {
		t.Errorf("after the last reply: %v, want io.EOF", err)
	}
}
