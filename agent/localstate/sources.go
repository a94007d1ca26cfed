package localstate

// Sources returns who registered each service of this node, by service ID.
func (c *Core) Sources() map[string]Source {
	out := make(map[string]Source, len(c.st.Services))
	for id, s := range c.st.Services {
		out[id] = s.Source
	}
	return out
}
