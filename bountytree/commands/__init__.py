"""One module per `bountytree` subcommand: `register(subparsers, common)` adds it, and its
`run(args, settings)` calls the same core functions the app calls."""
