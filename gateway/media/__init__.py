"""Media the edge originates itself: speech for the 933 read-back, sent as RTP."""
