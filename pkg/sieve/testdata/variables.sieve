require ["variables", "fileinto", "imap4flags", "relational", "comparator-i;ascii-numeric"];
# File list mail by the list's name, count addresses, flag through a variable.
if header :matches "List-ID" "*<*@*" {
    set :lower :upperfirst "list" "${2}";
    set :quotewildcard "q" "${list}*?";
    set :length "n" "${q}";
    fileinto "Lists/${list}";
}
if string :value "gt" :comparator "i;ascii-numeric" "${n}" "10" {
    addflag "mine" ["$Long", "\\Seen"];
    removeflag "mine" "\\Seen";
}
if hasflag :count "ge" :comparator "i;ascii-numeric" "mine" "1" {
    fileinto :flags "${mine}" "Long";
}
if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] "3" { setflag "\\Flagged"; }
set "x" "${BAD${x}} ${doh!} ${0}${99}";
