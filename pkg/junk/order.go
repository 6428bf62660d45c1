package junk

import (
	"cmp"
	"encoding/binary"
	"slices"
)

// DefaultPasses is how many times a training run (mailctl spam train, bench/spam) goes
// over its messages: the classifier learns by small steps, and one pass over a corpus
// does not take it as far as it can go. Chosen by cross-validation on the training half
// of bench/spam (see bench/README.md).
const DefaultPasses = 5

// TrainingOrder returns the order in which pass (0, 1, ...) of a training run learns the
// messages named by keys (file names, or any other names unique in the run), as indexes
// into keys: a fixed pseudo-random order, another one in each pass, that interleaves spam
// and ham. A classifier that learns by steps learns badly from all the spam and then all
// the ham: the last class learned pulls every verdict its way.
func TrainingOrder(keys []string, pass int) []int {
	order := make([]int, len(keys))
	hashes := make([]uint64, len(keys))
	var p [8]byte
	binary.BigEndian.PutUint64(p[:], uint64(pass))
	seed := fnvString(fnvOffset64, string(p[:])) // FNV-1a 64 of pass, then of each key
	for i, k := range keys {
		order[i] = i
		hashes[i] = fnvString(seed, k)
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(hashes[a], hashes[b]) })
	return order
}
