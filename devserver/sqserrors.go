package devserver

import (
	"encoding/json"
	"net/http"
)

// sqsResult is a finished JSON-protocol answer: a success body or an error.
type sqsResult struct {
	status int
	body   []byte
	err    *sqsError
}

// sqsError is an SQS error as the JSON protocol carries it: the shape name in
// __type (which the SDK maps to a typed error) and the legacy query code in
// x-amzn-query-error (which becomes the error's ErrorCode()).
type sqsError struct {
	Shape     string
	QueryCode string
	Status    int
	Message   string
}

func (e *sqsError) result() sqsResult { return sqsResult{status: e.Status, err: e} }

func errQueueDoesNotExist() *sqsError {
	return &sqsError{"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", 400,
		"The specified queue does not exist."}
}

func errReceiptHandleIsInvalid() *sqsError {
	return &sqsError{"ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", 400,
		"The input receipt handle is invalid or no longer refers to a message."}
}

func errMessageNotInflight() *sqsError {
	return &sqsError{"MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", 400,
		"The message referred to isn't in flight."}
}

func errInvalidParameter(msg string) *sqsError {
	return &sqsError{"InvalidParameterValue", "InvalidParameterValue", 400, msg}
}

func errMissingParameter(name string) *sqsError {
	return &sqsError{"MissingParameter", "MissingParameter", 400, "The request must contain the parameter " + name + "."}
}

func errInvalidAttributeValue(msg string) *sqsError {
	return &sqsError{"InvalidAttributeValue", "InvalidAttributeValue", 400, msg}
}

func errInvalidAttributeName(msg string) *sqsError {
	return &sqsError{"InvalidAttributeName", "InvalidAttributeName", 400, msg}
}

func errInternal(err error) *sqsError {
	return &sqsError{"InternalError", "InternalError", 500, err.Error()}
}

func (res sqsResult) write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", jsonContentType)
	h.Set("x-amzn-RequestId", newID())
	if res.err != nil {
		h.Set("x-amzn-query-error", res.err.QueryCode+";Sender")
		body, _ := json.Marshal(map[string]string{
			"__type":  "com.amazonaws.sqs#" + res.err.Shape,
			"message": res.err.Message,
		})
		w.WriteHeader(res.err.Status)
		_, _ = w.Write(body)
		return
	}
	w.WriteHeader(res.status)
	_, _ = w.Write(res.body)
}
