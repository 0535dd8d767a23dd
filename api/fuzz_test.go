package api

import (
	"testing"
)

// FuzzMeetingBody feeds arbitrary bodies to the conference command decoder:
// it must never panic, and what it accepts must be a complete command.
func FuzzMeetingBody(f *testing.F) {
	for _, seed := range []string{
		`{"action":"DESTROY","payload":{"conferenceFullName":"[acme]standup@conference.example.test"}}`,
		`{"action":"DESTROY","payload":{"conferenceFullName":"r@c.example.test","reason":"over"}}`,
		`{"action":"KICK_PARTICIPANT","payload":{"conferenceFullName":"r@c.example.test","participantId":"abcd1234"}}`,
		`{"action":"KICK_PARTICIPANT","payload":null}`,
		`{"action":"MUTE","payload":{}}`,
		`{"action":"DESTROY","payload":[]}`,
		`{"action":"DESTROY","payload":"x"}`,
		`{"action":1}`,
		`{"action":"DESTROY","payload":{"conferenceFullName":"\u0000"}} trailing`,
		`null`,
		`[]`,
		``,
		`{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, e := decodeMeeting(data)
		if e != nil {
			if e.status != 400 || e.code == "" || e.message == "" {
				t.Fatalf("bad error %+v", e)
			}
			if cmd != (meetingCommand{}) {
				t.Fatalf("error with a command: %+v", cmd)
			}
			return
		}
		if cmd.Room == "" || len(cmd.Reason) > maxReasonBytes {
			t.Fatalf("accepted an incomplete command %+v", cmd)
		}
		switch cmd.Action {
		case actionDestroy:
			if cmd.Participant != "" {
				t.Fatalf("destroy with a participant: %+v", cmd)
			}
		case actionKick:
			if cmd.Participant == "" {
				t.Fatalf("kick without a participant: %+v", cmd)
			}
		default:
			t.Fatalf("accepted action %q", cmd.Action)
		}
	})
}
