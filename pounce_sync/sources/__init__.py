"""Where settings come from besides the command line: a TOML config file, POUNCE_SYNC_*
environment variables, and the dotenv file that --env-file puts into the environment.

Each turns outside text into checked setting values (or variables) and says what is
wrong in one line naming its file, key or variable; none starts anything.
"""
