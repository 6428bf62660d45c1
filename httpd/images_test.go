package main

import "testing"

func TestAuthenticatedFrom(t *testing.T) {
	const us = "mx.example.org"
	for _, c := range []struct {
		name, hdr, from string
		ok              bool
	}{
		{"dmarc pass", "Authentication-Results: mx.example.org;\r\n\tspf=pass smtp.mailfrom=b@bounce.shop.test;\r\n\tdmarc=pass header.from=shop.test\r\nFrom: Shop <News@Shop.test>\r\n", "news@shop.test", true},
		{"dkim pass of the From domain", "From: <a@shop.test>\r\nAuthentication-Results: mx.example.org; dkim=pass header.d=shop.test\r\n", "a@shop.test", true},
		{"spf pass of the From domain", "From: <a@shop.test>\r\nAuthentication-Results: mx.example.org; spf=pass smtp.mailfrom=x@shop.test\r\n", "a@shop.test", true},
		{"dkim pass of another domain", "From: <a@shop.test>\r\nAuthentication-Results: mx.example.org; dkim=pass header.d=evil.test\r\n", "a@shop.test", false},
		{"spf pass of another domain", "From: <a@shop.test>\r\nAuthentication-Results: mx.example.org; spf=pass smtp.mailfrom=x@evil.test; dmarc=fail header.from=shop.test\r\n", "a@shop.test", false},
		{"dmarc pass of another domain", "From: <a@shop.test>\r\nAuthentication-Results: mx.example.org; dmarc=pass header.from=evil.test\r\n", "a@shop.test", false},
		{"results of another host", "From: <a@shop.test>\r\nAuthentication-Results: mx.evil.test; dmarc=pass header.from=shop.test\r\n", "a@shop.test", false},
		{"only the topmost of ours counts", "Authentication-Results: mx.example.org; dmarc=fail header.from=shop.test\r\nAuthentication-Results: mx.example.org; dmarc=pass header.from=shop.test\r\nFrom: <a@shop.test>\r\n", "a@shop.test", false},
		{"no results", "From: <a@shop.test>\r\n", "a@shop.test", false},
		{"two authors", "From: <a@shop.test>, <b@shop.test>\r\nAuthentication-Results: mx.example.org; dmarc=pass header.from=shop.test\r\n", "", false},
		{"no From", "Authentication-Results: mx.example.org; dmarc=pass header.from=shop.test\r\n", "", false},
	} {
		from, ok := authenticatedFrom([]byte(c.hdr), us)
		if from != c.from || ok != c.ok {
			t.Errorf("%s: %q, %v; want %q, %v", c.name, from, ok, c.from, c.ok)
		}
	}
}
