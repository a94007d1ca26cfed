package main

import (
	"fmt"
	"os"
	"time"

	"github.com/rumor-sd/rumor/sim/model"
	"github.com/rumor-sd/rumor/sim/scenario"
)

func main() {
	var reps []scenario.Report
	for _, f := range os.Args[1:] {
		sc, err := scenario.Load(f)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		for _, n := range []int{20, 100, 500, 1000} {
			sc.Nodes = n
			t := time.Now()
			r, _ := model.Run(sc, model.DefaultParams())
			r.Wall = time.Since(t)
			reps = append(reps, r)
		}
	}
	scenario.WriteTable(os.Stdout, reps)
}
