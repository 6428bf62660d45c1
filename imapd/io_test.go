package main

import "io"

var io_ReadFull = io.ReadFull
