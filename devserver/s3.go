package devserver

import (
	"encoding/xml"
	"net/http"
)

// unsupportedBucketConfig lists the bucket subresources gofakes3 does not
// implement. It routes a request for one of them by its method alone, so a
// PUT /bucket?lifecycle would try to create the bucket (and answer
// BucketAlreadyExists) and a GET would list its objects: answers a client
// would misread. They get S3's NotImplemented instead, which `taskiq-go
// init` reports as a step the endpoint skipped.
var unsupportedBucketConfig = []string{"lifecycle", "policy", "tagging", "encryption", "notification", "replication", "website", "acl", "cors", "logging", "ownershipControls", "publicAccessBlock"}

// withUnsupportedS3 wraps the gofakes3 handler to refuse those requests.
func withUnsupportedS3(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		for _, sub := range unsupportedBucketConfig {
			if q.Has(sub) {
				body, _ := xml.Marshal(struct {
					XMLName  xml.Name `xml:"Error"`
					Code     string
					Message  string
					Resource string
				}{Code: "NotImplemented", Message: "The local endpoint does not implement the " + sub + " configuration.", Resource: r.URL.Path})
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusNotImplemented)
				_, _ = w.Write(append([]byte(xml.Header), body...))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
