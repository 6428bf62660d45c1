// Package junk is spamd's learning spam filter: a MIME-aware tokenizer, a logistic
// regression over the tokens and the pairs of tokens of a message learned online (one
// step of stochastic gradient descent per message learned), and its weights in a bbolt
// database that holds a global corpus and one corpus per user.
//
// The pieces:
//
//   - Tokenize turns a message into a set of tokens through the project's MIME parser
//     (pkg/mime): the words of its text parts after transfer and charset decoding, HTML
//     reduced to its text plus the domains of its links, header fields as tokens prefixed
//     by the field's name (Subject words, From/To addresses and domains, Received hosts,
//     X-Mailer ...; any other field by its name alone), media types, character sets and
//     attachment types. Hostile input costs bounded work: at most MaxTokens distinct
//     tokens, MaxTextPerMessage octets of decoded text, MaxPartsWalked parts, and tokens
//     at most MaxTokenLen octets long.
//   - The features of a message are its tokens and each pair of tokens found one after
//     the other (the words of a phrase, the order of header fields). The model gives each
//     feature a weight; a message's log-odds of being spam are the corpus's bias plus the
//     sum of its features' weights, scaled by sqrt(100/n) for n features so that length
//     alone does not make a verdict surer.
//   - Open, DB.Learn, DB.LearnOnError, DB.Classify, DB.Stats, DB.Forget: the database.
//     Learn takes one step on the logistic loss, in proportion to how wrong the verdict
//     on the message is: a message learned again moves the model less as it gets it
//     right, so that a training run makes several passes over its mail (DefaultPasses,
//     in TrainingOrder, which interleaves spam and ham). Messages are counted once (by a
//     digest of their tokens): a message learned the other way before moves (what a
//     message moved out of Junk needs). Classify gives no opinion until the corpora hold
//     Options.MinSpam spam and Options.MinHam ham messages: a fresh install decides
//     nothing. A user's corpus learns on top of the global one: its weights are added
//     to the global weights for that user's mail, and learning for the user changes
//     them alone.
//
// Why a logistic regression and not the Bayesian chi-combining of SpamBayes and bogofilter
// that came before it here: on the SpamAssassin corpus (bench/spam, cross-validated on
// the training half) the best Bayesian variants caught 93-96 % of the spam with at most
// 0.15 % of ham false positives; the same tokens with their pairs in this model catch
// 98.8 %. A discriminative model weighs features that say the same thing once, where
// naive Bayes counts each as independent evidence; Goodman and Yih, "Online
// Discriminative Spam Filter Training" (CEAS 2006), and the TREC spam track found the
// same. The figures, what was tried and how it was chosen are in bench/README.md.
//
// The database is one bbolt file for the global corpus and every user's corpus (one bucket
// each), so that a thousand users cost one file, one lock, one memory map and one fsync per
// learned message rather than a thousand of each. The owner of the file (spamd) must be
// the only process that opens it; inside that process a DB is safe for concurrent use.
package junk
