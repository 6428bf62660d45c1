// Package junk is a Bayesian spam classifier: a MIME-aware tokenizer, Gary Robinson's
// token probabilities combined with Fisher's chi-squared method (the "chi-combining" of
// SpamBayes and bogofilter), and the token counts in a bbolt database that holds a global
// corpus and one corpus per user.
//
// The pieces:
//
//   - Tokenize turns a message into a set of tokens through the project's MIME parser
//     (pkg/mime): the words of its text parts after transfer and charset decoding, HTML
//     reduced to its text plus the domains of its links, header fields as tokens prefixed
//     by the field's name (Subject words, From/To addresses and domains, Received hosts,
//     X-Mailer ...; any other field by its name alone), media types, character sets and attachment types. Hostile input
//     costs bounded work: at most MaxTokens distinct tokens, MaxTextPerMessage octets of
//     decoded text, MaxPartsWalked parts, and tokens at most MaxTokenLen octets long.
//   - Open, DB.Learn, DB.Unlearn, DB.Classify, DB.Stats: the database. Learning is
//     remembered per message (by a digest of its tokens), so that learning a message again
//     does nothing and learning a message that was learned as spam as ham moves it (what a
//     message moved out of Junk needs). Classify gives no opinion until the corpus holds
//     Options.MinSpam spam and Options.MinHam ham messages: a fresh install decides nothing.
//     DB.LearnOnError trains on error: it learns a message only when the corpus gets it
//     wrong or is unsure of it, which on the SpamAssassin corpus gives a smaller corpus
//     that tells spam from ham better (bench/README.md).
//
// The database is one bbolt file for the global corpus and every user's corpus (one bucket
// each), so that a thousand users cost one file, one lock, one memory map and one fsync per
// learned message rather than a thousand of each. The owner of the file (spamd) must be
// the only process that opens it; inside that process a DB is safe for concurrent use.
//
// Probabilities follow SpamBayes (Robinson's f(w) with strength s = 0.45 and unknown-word
// probability x = 0.5, the larger class's counts weighed as the smaller's in n (SpamBayes'
// imbalance adjustment), tokens nearer than 0.1 to 0.5 ignored, the 150 strongest kept,
// Fisher's combination of both tails into the indicator (1 + S - H) / 2): see
// https://spambayes.sourceforge.io/background.html and Robinson, "A Statistical Approach to
// the Spam Problem", Linux Journal 107 (2003).
package junk
