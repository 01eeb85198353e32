package main

func benchCmd(g *globals, args []string) error {
	return usagef("bench: not available in this build")
}
