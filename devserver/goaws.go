package devserver

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"strings"

	"github.com/Admiral-Piett/goaws/app/gosqs"
	"github.com/Admiral-Piett/goaws/app/interfaces"
)

// goawsActions dispatches SQS actions to goaws's handlers directly. goaws's
// own router also links its SNS package, whose init generates an RSA key
// (about 50 ms), and every taskiq-go command would pay that on start.
var goawsActions = map[string]func(*http.Request) (int, interfaces.AbstractResponseBody){
	"CreateQueue":             gosqs.CreateQueueV1,
	"ListQueues":              gosqs.ListQueuesV1,
	"GetQueueAttributes":      gosqs.GetQueueAttributesV1,
	"SetQueueAttributes":      gosqs.SetQueueAttributesV1,
	"SendMessage":             gosqs.SendMessageV1,
	"ReceiveMessage":          gosqs.ReceiveMessageV1,
	"ChangeMessageVisibility": gosqs.ChangeMessageVisibilityV1,
	"DeleteMessage":           gosqs.DeleteMessageV1,
	"GetQueueUrl":             gosqs.GetQueueUrlV1,
	"PurgeQueue":              gosqs.PurgeQueueV1,
	"DeleteQueue":             gosqs.DeleteQueueV1,
	"SendMessageBatch":        gosqs.SendMessageBatchV1,
	"DeleteMessageBatch":      gosqs.DeleteMessageBatchV1,
}

// goawsHandler serves the SQS actions goaws implements, in the JSON protocol
// (X-Amz-Target) and the query protocol (Action=).
func goawsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		isJSON := strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-amz-json-1.0")
		action := r.FormValue("Action")
		if isJSON {
			_, action, _ = strings.Cut(r.Header.Get("X-Amz-Target"), ".")
		}
		fn, ok := goawsActions[action]
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, "Bad Request")
			return
		}
		status, body := fn(r)
		if isJSON {
			w.Header().Set("x-amzn-RequestId", body.GetRequestId())
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.WriteHeader(status)
			if res := body.GetResult(); res != nil {
				_ = json.NewEncoder(w).Encode(res)
			}
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		if data, err := xml.Marshal(body); err == nil {
			_, _ = w.Write(data)
		}
	})
}
