package userdb

import (
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Image senders: the senders whose remote images an account's webmail shows without
// asking, a preference of the account kept here so that it follows the user from
// session to session and device to device (httpd writes nothing of its own). This
// package only stores the addresses; httpd decides when a message really comes from
// one of them (an aligned DMARC, DKIM or SPF pass, see httpd(8)).

var bucketImageSenders = []byte("imagesenders")

// MaxImageSenders bounds the senders an account may trust for images.
const MaxImageSenders = 500

type imageSenderRecord struct {
	Added time.Time `json:"added"`
}

// senderAddress checks a sender's address and returns it in lower case.
func senderAddress(sender string) (string, error) {
	local, domain, err := ParseAddress(sender)
	if err != nil {
		return "", err
	}
	return strings.ToLower(local) + "@" + domain, nil
}

// AddImageSender lets the account addr see the remote images of mail from sender.
// Adding a sender twice is no error.
func (db *DB) AddImageSender(addr, sender string) error {
	a, d, err := accountAddress(addr)
	if err != nil {
		return err
	}
	s, err := senderAddress(sender)
	if err != nil {
		return err
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		if _, err := getUser(tx.Bucket(bucketUsers).Bucket([]byte(d)), a); err != nil {
			return err
		}
		b, err := tx.Bucket(bucketImageSenders).CreateBucketIfNotExists([]byte(a))
		if err != nil {
			return err
		}
		if b.Get([]byte(s)) != nil {
			return nil
		}
		if countKeys(b) >= MaxImageSenders {
			return invalid("%s trusts %d senders for images already, the most an account may", a, MaxImageSenders)
		}
		return putJSON(b, s, imageSenderRecord{Added: time.Now().UTC().Truncate(time.Second)})
	})
	if err != nil {
		return fmt.Errorf("trusting %s for the images of %s: %w", clip(sender), a, err)
	}
	return nil
}

// DelImageSender forgets sender among the image senders of the account addr; a sender
// that is not there is no error.
func (db *DB) DelImageSender(addr, sender string) error {
	a, _, err := accountAddress(addr)
	if err != nil {
		return err
	}
	s, err := senderAddress(sender)
	if err != nil {
		return err
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImageSenders).Bucket([]byte(a))
		if b == nil {
			return nil
		}
		return b.Delete([]byte(s))
	})
	if err != nil {
		return fmt.Errorf("forgetting %s among the image senders of %s: %w", clip(sender), a, err)
	}
	return nil
}

// ImageSenders lists the image senders of the account addr, sorted.
func (db *DB) ImageSenders(addr string) ([]string, error) {
	a, _, err := accountAddress(addr)
	if err != nil {
		return nil, err
	}
	out := []string{}
	err = db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImageSenders).Bucket([]byte(a))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("reading the image senders of %s: %w", a, err)
	}
	return out, nil // bolt walks its keys in byte order: sorted already
}

// forgetImageSendersOf deletes the image senders of the accounts that match.
func forgetImageSendersOf(tx *bolt.Tx, match func(account string) bool) error {
	return deleteAccountBuckets(tx.Bucket(bucketImageSenders), match)
}
