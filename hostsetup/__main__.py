from hostsetup.cli import program

program.run()
