package sqs

import "testing"

func TestParseQueueURL(t *testing.T) {
	for _, tc := range []struct {
		url, arn string
		complete bool
	}{
		{"https://sqs.eu-west-1.amazonaws.com/123456789012/taskiq", "arn:aws:sqs:eu-west-1:123456789012:taskiq", true},
		{"https://sqs.us-gov-west-1.amazonaws.com/123456789012/q-p1", "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:q-p1", true},
		{"https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q", "arn:aws-cn:sqs:cn-north-1:123456789012:q", true},
		{"https://eu-west-1.queue.amazonaws.com/123456789012/q", "arn:aws:sqs:eu-west-1:123456789012:q", true},
		{"https://queue.amazonaws.com/123456789012/q", "arn:aws:sqs:us-east-1:123456789012:q", true},
		{"https://vpce-0a1b-2c3d.sqs.ap-south-1.vpce.amazonaws.com/123456789012/q", "arn:aws:sqs:ap-south-1:123456789012:q", true},
		{"http://127.0.0.1:9324/000000000000/taskiq", "arn:aws:sqs:*:000000000000:taskiq", false},
		{"http://localhost:5000/queue/taskiq", "arn:aws:sqs:*:*:taskiq", false},
	} {
		id, err := ParseQueueURL(tc.url)
		if err != nil {
			t.Errorf("ParseQueueURL(%q): %v", tc.url, err)
			continue
		}
		if got := id.ARN(); got != tc.arn || id.Complete() != tc.complete {
			t.Errorf("ParseQueueURL(%q).ARN() = %q (complete %v), want %q (%v)", tc.url, got, id.Complete(), tc.arn, tc.complete)
		}
	}
	for _, bad := range []string{"", "taskiq", "https://sqs.eu-west-1.amazonaws.com/", "://x"} {
		if _, err := ParseQueueURL(bad); err == nil {
			t.Errorf("ParseQueueURL(%q) succeeded", bad)
		}
	}
}

func TestParseQueueARN(t *testing.T) {
	id, err := ParseQueueARN("arn:aws:sqs:us-east-1:000000000000:taskiq-p1")
	if err != nil || id.Name != "taskiq-p1" || id.Account != "000000000000" || id.Region != "us-east-1" {
		t.Errorf("ParseQueueARN = %+v, %v", id, err)
	}
	if _, err := ParseQueueARN("arn:aws:s3:::bucket"); err == nil {
		t.Error("ParseQueueARN accepted an S3 ARN")
	}
}
