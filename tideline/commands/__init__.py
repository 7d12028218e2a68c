"""The CLI's commands, one module each: run (and summary), ui, receiver, demo (and demo-data).

Each takes the parsed arguments and the environment tideline/cli.py read (a mapping, never
os.environ itself). Only demo.py imports the demo world (tideline.demo); `run` and `ui` start the
local destinations through it.
"""
