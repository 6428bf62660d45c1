require ["vacation", "vacation-seconds", "fileinto"];
# BEGIN postern vacation (set on the account page; edits in this block are replaced)
require "vacation";
vacation :days 3 :subject "Out of office" :from "Bob <bob@example.test>"
  :addresses ["bob.extra@example.test", "b@example.test"] :handle "ooo"
  text:
I am away until Monday.
..
.
;
# END postern vacation
if header :contains "list-id" "x" { fileinto "Lists"; stop; }
vacation :seconds 60 :mime "Content-Type: text/plain

mime body";
