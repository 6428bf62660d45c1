package smtp

import (
	"errors"
	"testing"
)

func TestParamsGetString(t *testing.T) {
	_, p, err := ParseMailFrom("FROM:<a@example.com> SIZE=12 body=8BITMIME SMTPUTF8 RET=FULL", true)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := p.Get("size"); !ok || v != "12" {
		t.Errorf("Get(size) = %q, %v", v, ok)
	}
	if v, ok := p.Get("SMTPUTF8"); !ok || v != "" {
		t.Errorf("Get(SMTPUTF8) = %q, %v", v, ok)
	}
	if _, ok := p.Get("ENVID"); ok {
		t.Error("Get(ENVID) found a missing parameter")
	}
	if got, want := p.String(), "SIZE=12 BODY=8BITMIME SMTPUTF8 RET=FULL"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := Params(nil).String(); got != "" {
		t.Errorf("String() of no params = %q", got)
	}
}

func TestParamsSize(t *testing.T) {
	tests := []struct {
		params Params
		n      int64
		ok     bool
		err    bool
	}{
		{nil, 0, false, false},
		{Params{{"SIZE", "0"}}, 0, true, false},
		{Params{{"SIZE", "10485760"}}, 10485760, true, false},
		{Params{{"SIZE", "9223372036854775807"}}, 9223372036854775807, true, false},
		{Params{{"SIZE", "9223372036854775808"}}, 0, true, true},
		{Params{{"SIZE", "123456789012345678901"}}, 0, true, true},
		{Params{{"SIZE", ""}}, 0, true, true},
		{Params{{"SIZE", "-1"}}, 0, true, true},
		{Params{{"SIZE", "+1"}}, 0, true, true},
		{Params{{"SIZE", "1k"}}, 0, true, true},
	}
	for _, tt := range tests {
		n, ok, err := tt.params.Size()
		if n != tt.n || ok != tt.ok || (err != nil) != tt.err || err != nil && !errors.Is(err, ErrParam) {
			t.Errorf("%v.Size() = %d, %v, %v", tt.params, n, ok, err)
		}
	}
}

func TestParamsBody(t *testing.T) {
	tests := []struct {
		params Params
		want   Body
		err    bool
	}{
		{nil, "", false},
		{Params{{"BODY", "7BIT"}}, Body7Bit, false},
		{Params{{"BODY", "8bitmime"}}, Body8BitMIME, false},
		{Params{{"BODY", "BinaryMIME"}}, BodyBinaryMIME, false},
		{Params{{"BODY", ""}}, "", true},
		{Params{{"BODY", "8BIT"}}, "", true},
		{Params{{"BODY", "8bıtmıme"}}, "", true}, // dotless i upper-cases to I
	}
	for _, tt := range tests {
		got, err := tt.params.Body()
		if got != tt.want || (err != nil) != tt.err || err != nil && !errors.Is(err, ErrParam) {
			t.Errorf("%v.Body() = %q, %v", tt.params, got, err)
		}
	}
}

func TestParamsSMTPUTF8(t *testing.T) {
	if ok, err := (Params{}).SMTPUTF8(); ok || err != nil {
		t.Errorf("absent: %v, %v", ok, err)
	}
	if ok, err := (Params{{"SMTPUTF8", ""}}).SMTPUTF8(); !ok || err != nil {
		t.Errorf("present: %v, %v", ok, err)
	}
	if _, err := (Params{{"SMTPUTF8", "yes"}}).SMTPUTF8(); !errors.Is(err, ErrParam) {
		t.Errorf("with value: %v", err)
	}
}
