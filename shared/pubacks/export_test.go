package pubacks

// ParseAck is parseAck, for the tests.
var ParseAck = parseAck
