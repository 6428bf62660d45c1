require ["fileinto", "imap4flags", "envelope", "subaddress", "copy", "reject", "ereject"];
# File mailing lists, flag the boss.
if exists "list-id" {
    fileinto "Lists";
    stop;
} elsif address :is ["from", "sender"] ["boss@example.com", "ceo@example.com"] {
    addflag "\\Flagged";
    keep;
} elsif envelope :detail "to" "spam" {
    discard;
} elsif header :comparator "i;octet" :matches "subject" "*[BULK]*" {
    fileinto :copy :flags ["\\Seen"] "Bulk";
} elsif size :over 10M {
    reject text:
Your message is too large.
.
;
} elsif anyof (not header :contains "x-a" "b", allof (true, false)) {
    ereject "no";
}
