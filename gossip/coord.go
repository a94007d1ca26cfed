package gossip

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	"github.com/hashicorp/serf/coordinate"
)

// A node's network coordinate rides on every ping ack (AckPayload), one ack per node
// per probe interval (1 s on a LAN): the largest periodic cost of an idle pool after
// the ping itself. It travels in binary, 2 + 4 × (dims + 3) bytes (46 with serf's 8
// dimensions), not as the JSON rumor sent before (about 260 bytes, close to half the
// idle traffic of a pool of 50):
//
//	coord = 0xC0 dims:byte float32 × dims (Vec) float32 (Error) float32 (Adjustment) float32 (Height)
//
// float32 keeps about 7 significant digits: far finer than the microseconds a
// coordinate's distances mean anything at. The tag byte cannot start JSON (which
// starts with '{' or white space here), so decodeCoord still reads the JSON of agents
// before this format; those agents cannot read the binary form and keep their
// estimates of newer peers where they were until they are upgraded too (counted as
// rumor_gossip_messages_dropped_total{reason="bad_coordinate"} there).
const coordTag = 0xC0

// maxCoordDims bounds the dimensions read from the network.
const maxCoordDims = 32

// encodeCoord returns c in the binary form above.
func encodeCoord(c *coordinate.Coordinate) []byte {
	b := make([]byte, 0, 2+4*(len(c.Vec)+3))
	b = append(b, coordTag, byte(len(c.Vec)))
	for _, v := range c.Vec {
		b = binary.BigEndian.AppendUint32(b, math.Float32bits(float32(v)))
	}
	for _, v := range []float64{c.Error, c.Adjustment, c.Height} {
		b = binary.BigEndian.AppendUint32(b, math.Float32bits(float32(v)))
	}
	return b
}

// decodeCoord reads a coordinate in the binary form, or in the JSON of older agents.
func decodeCoord(b []byte) (*coordinate.Coordinate, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty coordinate", errMalformed)
	}
	if b[0] != coordTag {
		var c coordinate.Coordinate
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("%w: coordinate: %w", errMalformed, err)
		}
		return &c, nil
	}
	if len(b) < 2 || int(b[1]) > maxCoordDims || len(b) != 2+4*(int(b[1])+3) {
		return nil, fmt.Errorf("%w: coordinate of %d bytes", errMalformed, len(b))
	}
	f := func(i int) float64 { return float64(math.Float32frombits(binary.BigEndian.Uint32(b[2+4*i:]))) }
	dims := int(b[1])
	c := &coordinate.Coordinate{Vec: make([]float64, dims)}
	for i := range dims {
		c.Vec[i] = f(i)
	}
	c.Error, c.Adjustment, c.Height = f(dims), f(dims+1), f(dims+2)
	return c, nil
}
