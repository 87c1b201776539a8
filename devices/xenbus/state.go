package xenbus

import (
	"strconv"
	"strings"
)

// State is enum xenbus_state (xen/include/public/io/xenbus.h): the value
// each end of a split device keeps in its "state" node.
type State int

// The XenbusState* values of io/xenbus.h.
const (
	StateUnknown       State = 0
	StateInitialising  State = 1
	StateInitWait      State = 2 // finished early initialisation, waiting for the peer
	StateInitialised   State = 3 // waiting for a connection from the peer
	StateConnected     State = 4
	StateClosing       State = 5 // being closed: an error or an unplug
	StateClosed        State = 6
	StateReconfiguring State = 7
	StateReconfigured  State = 8
)

var stateNames = [...]string{
	StateUnknown:       "Unknown",
	StateInitialising:  "Initialising",
	StateInitWait:      "InitWait",
	StateInitialised:   "Initialised",
	StateConnected:     "Connected",
	StateClosing:       "Closing",
	StateClosed:        "Closed",
	StateReconfiguring: "Reconfiguring",
	StateReconfigured:  "Reconfigured",
}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Value is the node text of s, as drivers write it ("%d").
func (s State) Value() string { return strconv.Itoa(int(s)) }

// ParseState reads a "state" node as Linux's xenbus_read_driver_state
// does: a decimal number (surrounding blanks tolerated); anything else,
// or a number outside enum xenbus_state, is StateUnknown. The guest
// writes its frontend's state node, so any text may arrive here.
func ParseState(v string) State {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 || n >= len(stateNames) {
		return StateUnknown
	}
	return State(n)
}
