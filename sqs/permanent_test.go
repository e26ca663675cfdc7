package sqs

import (
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"
)

// Errors a retry cannot change are marked permanent, through the wrapping
// every call applies; throttling and server faults are not.
func TestPermanent(t *testing.T) {
	for code, want := range map[string]bool{
		"ReceiptHandleIsInvalid":                    true,
		"AWS.SimpleQueueService.MessageNotInflight": true,
		"MessageNotInflight":                        true,
		"InvalidParameterValue":                     true,
		"AWS.SimpleQueueService.NonExistentQueue":   true,
		"ThrottlingException":                       false,
		"RequestThrottled":                          false,
		"InternalError":                             false,
		"ServiceUnavailable":                        false,
	} {
		err := wrap("change visibility", "q", &smithy.GenericAPIError{Code: code, Message: "m"})
		if got := Permanent(err); got != want {
			t.Errorf("%s: Permanent = %v, want %v (%v)", code, got, want, err)
		}
		if got := Permanent(fmt.Errorf("outer: %w", err)); got != want {
			t.Errorf("%s wrapped again: Permanent = %v, want %v", code, got, want)
		}
	}
	if Permanent(wrap("receive", "q", errors.New("dial tcp: connection refused"))) {
		t.Error("a connection error is marked permanent")
	}
	if Permanent(nil) {
		t.Error("nil is permanent")
	}
	if !Permanent(entryError("delete batch", aws.String("ReceiptHandleIsInvalid"), aws.String("m"), false)) {
		t.Error("a batch entry's invalid receipt is not permanent")
	}
	if !Permanent(entryError("delete batch", aws.String("Whatever"), aws.String("m"), true)) {
		t.Error("a sender-fault batch entry is not permanent")
	}
	if Permanent(entryError("delete batch", aws.String("InternalError"), aws.String("m"), false)) {
		t.Error("a server-fault batch entry is permanent")
	}
}
