from recserve.candidates.app import main

main()
