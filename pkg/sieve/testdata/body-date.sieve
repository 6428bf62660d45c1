require ["body", "date", "index", "relational", "fileinto", "variables"];
if body :content ["text/plain", "audio", ""] :contains ["missile", ""] {
    fileinto "Secrets";
} elsif body :raw :matches "*MONEY*" {
    discard;
} elsif body :text :value "ge" "m" {
    keep;
}
if allof (date :value "ge" :originalzone "date" "hour" "09",
          date :is :index 2 :last :zone "-0700" "received" "weekday" "6",
          currentdate :zone "+0100" :matches "iso8601" "*T*") {
    fileinto "Office/${1}";
}
if header :index 1 :last :contains "received" "example" { stop; }
