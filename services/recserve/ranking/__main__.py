from recserve.ranking.app import main

main()
