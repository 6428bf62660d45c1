package junk

import (
	"bytes"
	"encoding/binary"
	"math"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// A user's features are packed: the feature bucket maps the first octet of a feature's
// hash to a value holding the features whose hash starts with that octet, sorted, each an
// entry of entrySize octets: the other 7 octets of the hash, then the weight (big-endian
// IEEE 754 float32).
const entrySize = 7 + 4

// findEntry returns the index of the entry for hash rest (7 octets) in the packed value
// v, or where it would be inserted, and whether it is there.
func findEntry(v, rest []byte) (int, bool) {
	n := len(v) / entrySize
	i := sort.Search(n, func(i int) bool { return bytes.Compare(v[i*entrySize:i*entrySize+7], rest) >= 0 })
	return i, i < n && bytes.Equal(v[i*entrySize:i*entrySize+7], rest)
}

// readShard returns the weight of feature hash k in the packed feature bucket tb (nil:
// none).
func readShard(tb *bolt.Bucket, k [8]byte) float64 {
	if tb == nil {
		return 0
	}
	v := tb.Get(k[:1])
	i, ok := findEntry(v, k[1:])
	if !ok {
		return 0
	}
	return float64(math.Float32frombits(binary.BigEndian.Uint32(v[i*entrySize+7:])))
}

// updateShards adds dw to the weight of every feature hash in keys (sorted) in the packed
// feature bucket tb, rewriting each value once; a weight that comes to 0 is removed.
func updateShards(tb *bolt.Bucket, keys [][8]byte, dw float64) error {
	for len(keys) > 0 {
		shard := keys[0][0]
		n := 1
		for n < len(keys) && keys[n][0] == shard {
			n++
		}
		group := keys[:n]
		keys = keys[n:]
		old := tb.Get([]byte{shard})
		old = old[:len(old)-len(old)%entrySize] // a torn entry cannot be read
		out := make([]byte, 0, len(old)+len(group)*entrySize)
		// Merge the sorted old entries with the sorted keys of the group.
		i := 0
		for j, k := range group {
			if j > 0 && k == group[j-1] {
				continue
			}
			for i*entrySize < len(old) && bytes.Compare(old[i*entrySize:i*entrySize+7], k[1:]) < 0 {
				out = append(out, old[i*entrySize:(i+1)*entrySize]...)
				i++
			}
			var w float64
			if i*entrySize < len(old) && bytes.Equal(old[i*entrySize:i*entrySize+7], k[1:]) {
				w = float64(math.Float32frombits(binary.BigEndian.Uint32(old[i*entrySize+7:])))
				i++
			}
			w32 := float32(w + dw)
			if w32 == 0 {
				continue
			}
			out = append(out, k[1:]...)
			out = binary.BigEndian.AppendUint32(out, math.Float32bits(w32))
		}
		out = append(out, old[i*entrySize:]...)
		var err error
		if len(out) == 0 {
			err = tb.Delete([]byte{shard})
		} else {
			err = tb.Put([]byte{shard}, out)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
