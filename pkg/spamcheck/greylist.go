package spamcheck

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
)

// OpGreylist asks spamd whether a recipient of a message from a client passes
// greylisting (RFC 6647): smtpd sends it at RCPT on port 25 when [spamd] greylist is on.
const OpGreylist = "greylist"

// GreylistRequest names the triplet: the client's address, the envelope sender (empty
// for <>) and the recipient.
type GreylistRequest struct {
	ClientAddr string `json:"client_addr"`
	From       string `json:"from"`
	Rcpt       string `json:"rcpt"`
	// Helo is the client's HELO/EHLO name, for the SPF check of a sender on the
	// administrator's allow list (RFC 7208 §4.1: an input of check_host).
	Helo string `json:"helo,omitempty"`
}

// GreylistResult is spamd's answer: Pass, or not before Retry seconds; Reason says why,
// for the log.
type GreylistResult struct {
	Pass   bool   `json:"pass"`
	Retry  int    `json:"retry,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// DecodeGreylistRequest decodes and checks a greylist request body.
func DecodeGreylistRequest(body []byte) (*GreylistRequest, error) {
	var r GreylistRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decoding greylist request: %w", err)
	}
	if net.ParseIP(r.ClientAddr) == nil {
		return nil, fmt.Errorf("greylist request: client address %q is not an IP address", trim(r.ClientAddr))
	}
	if r.Rcpt == "" {
		return nil, fmt.Errorf("greylist request without a recipient")
	}
	for _, s := range []string{r.From, r.Rcpt, r.Helo} {
		if len(s) > maxField || strings.ContainsAny(s, "\r\n\x00") {
			return nil, fmt.Errorf("greylist request: bad field %q", trim(s))
		}
	}
	return &r, nil
}

// Greylist asks spamd about a triplet.
func (c *Client) Greylist(ctx context.Context, req *GreylistRequest) (*GreylistResult, error) {
	var res GreylistResult
	if _, err := c.c.Call(ctx, OpGreylist, req, &res); err != nil {
		return nil, fmt.Errorf("asking spamd about greylisting: %w", err)
	}
	return &res, nil
}
