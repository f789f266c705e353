"""One module per CLI subcommand: ``add_parser(parser)`` declares its options, ``run(args)`` does it."""
